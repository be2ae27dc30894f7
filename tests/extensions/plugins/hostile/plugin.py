"""A hostile plugin: every action attacks the sandbox in one way."""

import os
import sys

from plinth_sdk import action, kv, log, records


@action("loop")
def loop(input):
    while True:
        pass


@action("membomb")
def membomb(input):
    hoard = []
    while True:
        hoard.append(bytearray(8 << 20))


@action("hold")
def hold(input):
    # Not an attack: holds input["mb"] MB (written, so it is really there) until it returns.
    held = bytearray(input["mb"] << 20)
    held[::4096] = b"x" * len(held[::4096])
    return {"held": len(held)}


@action("recurse")
def recurse(input):
    sys.setrecursionlimit(10**9)

    def down(n):
        return down(n + 1) + 1

    return {"depth": down(0)}


@action("files")
def files(input):
    seen = {}
    for path in ("/etc/passwd", "/proc/self/environ", "/", "."):
        try:
            if path in ("/", "."):
                seen[path] = os.listdir(path)
            else:
                with open(path) as f:
                    seen[path] = f.read()
        except Exception as exc:
            seen[path] = f"refused: {type(exc).__name__}"
    return seen


@action("env")
def env(input):
    return {"environ": dict(os.environ)}


@action("socket")
def socket_(input):
    import socket

    try:
        s = socket.create_connection((input.get("host", "127.0.0.1"), input.get("port", 80)), 1)
        s.close()
        return {"connected": True}
    except Exception as exc:
        return {"connected": False, "error": type(exc).__name__}


@action("ungranted")
def ungranted(input):
    kv.set("stolen", "x")
    return {"wrote": True}


@action("other-tenant")
def other_tenant(input):
    # There is no way to name another tenant: the host always uses the caller's tenant.
    return records.create(input["app"], "claim", {"amount": 1, "tenant_id": input["tenant"]})


@action("bigout")
def bigout(input):
    return {"blob": "x" * (100 << 20)}


@action("badshape")
def badshape(input):
    return {"nope": 1}


@action("echo")
def echo(input):
    return input


@action("sleep")
def sleep(input):
    import time

    time.sleep(input.get("seconds", 30))
    return {"slept": True}


@action("log-then-sleep")
def log_then_sleep(input):
    import time

    log(input.get("line", "going to sleep"))
    time.sleep(input.get("seconds", 30))
    return {"slept": True}


@action("chatty")
def chatty(input):
    for i in range(input.get("lines", 100_000)):
        log(f"line {i}")
    return {"logged": input.get("lines", 100_000)}
