"""The plugin package file: a zip of the manifest, the component, the ES modules of its UI
components (`[components.<tag>] module = "ui/elements.js"`) and an optional signature."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from plinth.errors import BadRequest, Fault, PayloadTooLarge, ValidationFailed
from plinth.extensions import manifest as manifest_mod
from plinth.extensions.models import Manifest

MANIFEST = "plinth-plugin.toml"
COMPONENT = "plugin.wasm"
SIGNATURE = "signature.json"
MAX_COMPONENT = 64 << 20
MAX_MODULE = 512 << 10  # one UI module: plain JS for the browser, so small
MAX_MANIFEST = 64 << 10
MAX_SIGNATURE = 4 << 10
MAX_MEMBERS = 64
# Deflate reaches ~1000:1 on a run of zeros; real components compress ~3:1, text ~5:1.
MAX_RATIO = 100
RATIO_FLOOR = 1 << 20  # smaller members may compress as well as they like


@dataclass(frozen=True)
class Package:
    manifest_text: str
    manifest: Manifest
    wasm: bytes
    signature: str | None = None  # hex ed25519 signature of `signed_message`
    public_key: str | None = None  # hex raw ed25519 public key
    modules: dict[str, bytes] = field(default_factory=dict)  # package path -> ES module

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.wasm).hexdigest()

    def module_hashes(self) -> dict[str, str]:
        return {path: hashlib.sha256(body).hexdigest() for path, body in self.modules.items()}


def signed_message(
    name: str, version: str, sha256: str, manifest_text: str, modules: dict[str, str] | None = None
) -> bytes:
    """What a publisher signs: the identity, the component's hash, the manifest's hash and
    (when there are any) the hash of each UI module, so no file can be swapped."""
    manifest_hash = hashlib.sha256(manifest_text.encode()).hexdigest()
    lines = [f"plinth-plugin\n{name}@{version}\n{sha256}\n{manifest_hash}"]
    lines += [f"{path} {digest}" for path, digest in sorted((modules or {}).items())]
    return "\n".join(lines).encode()


def rotation_message(name: str, public_key: str) -> bytes:
    """What the new key signs to be pinned for plugin `name` (proof that someone holds it)."""
    return f"plinth-plugin-key\n{name}\n{public_key}".encode()


def module_paths(manifest: Manifest) -> list[str]:
    """The package paths of the ES modules the manifest's components name."""
    return list(dict.fromkeys(p.module for p in manifest.components() if p.module))


def verify(public_key: str, signature: str, message: bytes) -> bool:
    """Whether `signature` (hex) over `message` verifies with `public_key` (hex)."""
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            bytes.fromhex(signature), message
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def read_modules(manifest: Manifest, source: Path) -> dict[str, bytes]:
    """The UI modules a plugin's sources hold (for `plinth plugin build`), checked."""
    found: dict[str, bytes] = {}
    for path in module_paths(manifest):
        file = source / path
        if not file.is_file():
            raise BadRequest(f"{source} has no {path} (named by a component's module)", path=path)
        found[path] = file.read_bytes()
    _check_modules(found)
    return found


def _check_modules(modules: dict[str, bytes]) -> None:
    for path, body in modules.items():
        if len(body) > MAX_MODULE:
            raise PayloadTooLarge(f"{path} is larger than {MAX_MODULE} bytes", path=path)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"{path} is not UTF-8 text", path=path) from exc


def pack(
    manifest_text: str,
    wasm: bytes,
    key: Ed25519PrivateKey | None = None,
    modules: dict[str, bytes] | None = None,
) -> bytes:
    """A package file's bytes (with the UI `modules` its components name), signed with
    `key` if given."""
    manifest = manifest_mod.parse(manifest_text)
    modules = dict(modules or {})
    missing = [p for p in module_paths(manifest) if p not in modules]
    if missing:
        raise BadRequest(
            f"The package needs {missing[0]} (named by a component's module)", path=missing[0]
        )
    _check_modules(modules)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(MANIFEST, manifest_text)
        z.writestr(COMPONENT, wasm)
        for path, body in modules.items():
            z.writestr(path, body)
        if key is not None:
            from cryptography.hazmat.primitives import serialization

            pub = key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            message = signed_message(
                manifest.name,
                manifest.version,
                hashlib.sha256(wasm).hexdigest(),
                manifest_text,
                {p: hashlib.sha256(b).hexdigest() for p, b in modules.items()},
            )
            z.writestr(
                SIGNATURE,
                json.dumps({"public_key": pub.hex(), "signature": key.sign(message).hex()}),
            )
    return buf.getvalue()


def unpack(data: bytes) -> Package:
    """Read a package file, refusing anything malformed with the path of the fault.

    Nothing is inflated before its declared sizes are checked, and nothing is inflated past
    its member's limit whatever the archive claims: a zip bomb or a lying central directory
    costs the server at most the limits below. A bad archive is a 422 with the reason.
    """
    _check_directory(data)
    try:
        return _unpack(data)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        RuntimeError,
        OSError,
        ValueError,
        struct.error,
    ) as exc:
        raise _bad("package", f"The package is not a readable zip archive: {exc}") from None


def _unpack(data: bytes) -> Package:
    z = zipfile.ZipFile(io.BytesIO(data))
    with z:
        infos = {info.filename: info for info in z.infolist()}
        for required in (MANIFEST, COMPONENT):
            if required not in infos:
                raise _bad(required, f"The package has no {required}")
        manifest_text = _read(z, infos[MANIFEST], MAX_MANIFEST).decode("utf-8", errors="replace")
        try:
            manifest = manifest_mod.parse(manifest_text)
        except ValidationFailed as exc:
            for f in exc.faults:
                object.__setattr__(f, "path", f"{MANIFEST}.{f.path}")
            raise
        wasm = _read(z, infos[COMPONENT], MAX_COMPONENT)
        modules: dict[str, bytes] = {}
        for path in module_paths(manifest):
            if path not in infos:
                raise _bad(path, f"The package has no {path} (named by a component's module)")
            modules[path] = _read(z, infos[path], MAX_MODULE)
        _check_modules(modules)
        signature = public_key = None
        if SIGNATURE in infos:
            try:
                sig = json.loads(_read(z, infos[SIGNATURE], MAX_SIGNATURE))
                signature, public_key = str(sig["signature"]), str(sig["public_key"])
                bytes.fromhex(signature)
                bytes.fromhex(public_key)
            except (ValueError, KeyError, TypeError) as exc:
                raise _bad(
                    SIGNATURE, "signature.json needs hex 'signature' and 'public_key'"
                ) from exc
    if not wasm.startswith(b"\0asm"):
        raise _bad(COMPONENT, "plugin.wasm is not a WebAssembly component")
    return Package(manifest_text, manifest, wasm, signature, public_key, modules)


def _check_directory(data: bytes) -> None:
    """Refuse an archive whose central directory lists more members than a package has,
    before `zipfile` builds an object for each of them."""
    tail = data[-(0xFFFF + 22) :]
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise _bad("package", "A plugin package is a zip file (no end of central directory)")
    entries = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    if entries > MAX_MEMBERS:
        raise _bad("package", f"The package lists {entries} files; at most {MAX_MEMBERS}")


def _read(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A member's bytes, within `limit` expanded and a sane compression ratio."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise _bad(name, f"{name} is encrypted")
    if info.file_size > limit:  # declared: checked before inflating anything
        raise PayloadTooLarge(f"{name} expands to more than {limit} bytes", path=name)
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(1, info.compress_size):
        raise PayloadTooLarge(
            f"{name} claims to expand {info.file_size // max(1, info.compress_size)}-fold; "
            f"at most {MAX_RATIO}-fold is accepted",
            path=name,
        )
    with z.open(info) as member:
        body = member.read(limit + 1)  # whatever the directory claims, never more
    if len(body) > limit:
        raise PayloadTooLarge(f"{name} expands to more than {limit} bytes", path=name)
    if len(body) != info.file_size:
        raise _bad(name, f"{name} is {len(body)} bytes, not the {info.file_size} its entry says")
    return body


def _bad(path: str, message: str) -> ValidationFailed:
    return ValidationFailed.of([Fault(path, message, "package")], "package")
