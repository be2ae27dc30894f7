"""The plugin package file: a zip of the manifest, the component, the ES modules of its UI
components (`[components.<tag>] module = "ui/elements.js"`) and an optional signature."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from plinth.errors import BadRequest, PayloadTooLarge, ValidationFailed
from plinth.extensions import manifest as manifest_mod
from plinth.extensions.models import Manifest

MANIFEST = "plinth-plugin.toml"
COMPONENT = "plugin.wasm"
SIGNATURE = "signature.json"
MAX_COMPONENT = 64 << 20
MAX_MODULE = 512 << 10  # one UI module: plain JS for the browser, so small


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
    """Read a package file, refusing anything malformed with the path of the fault."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BadRequest("A plugin package is a zip file", path="package") from exc
    with z:
        names = set(z.namelist())
        for required in (MANIFEST, COMPONENT):
            if required not in names:
                raise BadRequest(f"The package has no {required}", path=required)
        info = z.getinfo(COMPONENT)
        if info.file_size > MAX_COMPONENT:  # checked before inflating: no zip bombs
            raise PayloadTooLarge(
                f"The component is larger than {MAX_COMPONENT} bytes", path=COMPONENT
            )
        manifest_text = z.read(MANIFEST).decode("utf-8", errors="replace")
        try:
            manifest = manifest_mod.parse(manifest_text)
        except ValidationFailed as exc:
            for f in exc.faults:
                object.__setattr__(f, "path", f"{MANIFEST}.{f.path}")
            raise
        wasm = z.read(COMPONENT)
        modules: dict[str, bytes] = {}
        for path in module_paths(manifest):
            if path not in names:
                raise BadRequest(
                    f"The package has no {path} (named by a component's module)", path=path
                )
            if z.getinfo(path).file_size > MAX_MODULE:  # before inflating
                raise PayloadTooLarge(f"{path} is larger than {MAX_MODULE} bytes", path=path)
            modules[path] = z.read(path)
        _check_modules(modules)
        signature = public_key = None
        if SIGNATURE in names:
            try:
                sig = json.loads(z.read(SIGNATURE))
                signature, public_key = str(sig["signature"]), str(sig["public_key"])
                bytes.fromhex(signature)
                bytes.fromhex(public_key)
            except (ValueError, KeyError, TypeError) as exc:
                raise BadRequest(
                    "signature.json needs hex 'signature' and 'public_key'", path=SIGNATURE
                ) from exc
    if not wasm.startswith(b"\0asm"):
        raise BadRequest("plugin.wasm is not a WebAssembly component", path=COMPONENT)
    return Package(manifest_text, manifest, wasm, signature, public_key, modules)
