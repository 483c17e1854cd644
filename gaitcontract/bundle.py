"""Signed model bundles: one file, verified with Ed25519 before anything is unpacked.

Layout (all of it one file):

    gaitmil-bundle/1\\n                      the magic line
    {"signer": ..., "signature": ..., ...}\\n  a JSON header line
    <tar payload>                            the model folder's files, flat

The signature (Ed25519, from the `cryptography` package) is over SIGNED_PREFIX + the payload's
sha256 hex digest, so a changed byte anywhere in the payload, or a signature by a key the kiosk
does not trust, is refused before the tar is opened. The writer (`python -m export bundle`) and
the reader (the kiosk's `python -m edge model install`) both use this module: one definition of
the format. Standard library only; `cryptography` is imported when a key is used, so the kiosk's
model store still runs before its venv is installed (systemd/install.sh).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from gaitcontract.errors import GaitMILError

if TYPE_CHECKING:  # `cryptography` is imported only when a key is used
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

log = logging.getLogger("gaitcontract.bundle")

MAGIC = b"gaitmil-bundle/1\n"
SIGNED_PREFIX = b"gaitmil-bundle/1 payload sha256 "
MAX_HEADER = 1 << 16


class BundleError(GaitMILError):
    """A bundle or key is unreadable, damaged, unsigned or signed by a key not trusted.

    The message names the file and what to do; the kiosk reports it as its ModelError."""


@dataclass(frozen=True)
class BundleHeader:
    model_id: str
    signer: str | None
    key_id: str | None
    signature: bytes | None
    payload_sha256: str
    payload_size: int


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for an Ed25519 public key: sha256 of its raw bytes, 16 hex digits."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _crypto() -> ModuleType:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise BundleError(
            "signed bundles need the `cryptography` package: pip install cryptography "
            "(it is in the kiosk's base install)"
        ) from None
    return serialization


def load_public_key(path: Path) -> Ed25519PublicKey:
    serialization = _crypto()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise BundleError(
            f"trusted key {path}: cannot read it as a PEM public key ({exc}); fix model.trusted_keys"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"trusted key {path}: not an Ed25519 public key; fix model.trusted_keys")
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    serialization = _crypto()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BundleError(
            f"signing key {path}: cannot read it as an unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"signing key {path}: not an Ed25519 private key")
    return key


def write_keypair(private_path: Path) -> Path:
    """A new Ed25519 key pair: PRIVATE (mode 0600, the developer keeps it) and PRIVATE.pub."""
    serialization = _crypto()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private_path = Path(private_path)
    if private_path.exists():
        raise BundleError(
            f"{private_path} exists: a signing key is never overwritten; choose another --out"
        )
    private_path.touch(mode=0o600)
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_path = private_path.with_name(private_path.name + ".pub")
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return public_path


def write_bundle(
    out: Path, files: Sequence[Path], model_id: str, sign_key: Path | None, signer: str | None
) -> BundleHeader:
    """Pack `files` (flat) into one bundle file, signed with `sign_key` when given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(files, key=lambda p: p.name):
            info = tar.gettarinfo(str(path), arcname=path.name)
            # the same files give the same bytes: no owner, time or mode from this machine
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o644
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    signature: bytes | None = None
    key_id: str | None = None
    if sign_key is not None:
        private = load_private_key(sign_key)
        signature = private.sign(SIGNED_PREFIX + digest.encode())
        key_id = key_id_of(private.public_key())
    header = {
        "model_id": model_id,
        "signer": signer if sign_key is not None else None,
        "key_id": key_id,
        "signature": base64.b64encode(signature).decode() if signature else None,
        "payload_sha256": digest,
        "payload_size": len(payload),
    }
    partial = out.with_name(out.name + ".tmp")
    partial.write_bytes(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload)
    partial.replace(out)
    return read_header(out)[0]


def read_header(path: Path) -> tuple[BundleHeader, int]:
    """The bundle's header and the offset of its payload; BundleError naming the file if malformed."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(MAGIC))
            line = handle.readline(MAX_HEADER)
            offset = handle.tell()
    except OSError as exc:
        raise BundleError(f"bundle {path}: cannot read it ({exc})") from None
    if magic != MAGIC:
        raise BundleError(f"bundle {path}: not a gaitmil bundle (no {MAGIC!r} line); refused")
    try:
        data = json.loads(line)
        signature = data.get("signature")
        header = BundleHeader(
            model_id=str(data["model_id"]),
            signer=data.get("signer"),
            key_id=data.get("key_id"),
            signature=base64.b64decode(signature, validate=True) if signature else None,
            payload_sha256=str(data["payload_sha256"]),
            payload_size=int(data["payload_size"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleError(f"bundle {path}: its header is damaged ({exc}); refused") from None
    return header, offset


def verify_bundle(
    path: Path, trusted_keys: Sequence[Path], allow_unsigned: bool = False
) -> tuple[BundleHeader, bytes, str | None]:
    """(header, payload, signer) of a bundle that passed; BundleError naming the file and reason."""
    header, offset = read_header(path)
    payload = path.read_bytes()[offset:]
    digest = hashlib.sha256(payload).hexdigest()
    if len(payload) != header.payload_size or digest != header.payload_sha256:
        raise BundleError(
            f"bundle {path}: tampered or damaged: its contents do not match the hash in its header; "
            "refused, the store is unchanged. Get the bundle again from the model developer"
        )
    if header.signature is None:
        if not allow_unsigned:
            raise BundleError(
                f"bundle {path}: unsigned; refused, the store is unchanged. Ask for a bundle signed "
                "with the district's key (python -m export bundle --sign-key KEY), or pass "
                "--allow-unsigned on a development machine"
            )
        log.warning(
            "bundle %s: UNSIGNED, accepted because of --allow-unsigned (development only)", path
        )
        return header, payload, None
    if not trusted_keys:
        raise BundleError(
            f"bundle {path}: signed by {header.signer or header.key_id}, but this kiosk trusts no key; "
            "refused. Put the district's public key in model.trusted_keys (or --trusted-key)"
        )
    from cryptography.exceptions import InvalidSignature

    message = SIGNED_PREFIX + digest.encode()
    for key_path in trusted_keys:
        key = load_public_key(key_path)
        try:
            key.verify(header.signature, message)
        except InvalidSignature:
            continue
        signer = f"{Path(key_path).stem}:{key_id_of(key)}"
        log.info("bundle %s: signature verified with %s", path, key_path)
        return header, payload, signer
    raise BundleError(
        f"bundle {path}: its signature (key {header.key_id}, says {header.signer!r}) does not verify "
        f"with any trusted key ({', '.join(str(k) for k in trusted_keys)}): wrongly signed or "
        "tampered; refused, the store is unchanged"
    )


def _unpack(payload: bytes, folder: Path, path: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:") as tar:
        for member in tar.getmembers():
            # flat regular files only: no paths, links or devices can come out of a bundle
            if not member.isfile() or "/" in member.name or member.name.startswith("."):
                raise BundleError(f"bundle {path}: unexpected entry {member.name!r}; refused")
            source = tar.extractfile(member)
            if source is None:
                raise BundleError(f"bundle {path}: cannot read {member.name!r}; refused")
            (folder / member.name).write_bytes(source.read())


@contextlib.contextmanager
def unpacked_bundle(
    path: Path, trusted_keys: Sequence[Path], store_root: Path, allow_unsigned: bool = False
) -> Iterator[tuple[Path, str | None]]:
    """Verify, then unpack into a temporary folder: (folder, signer) for ModelStore.install_folder."""
    header, payload, signer = verify_bundle(path, trusted_keys, allow_unsigned)
    with tempfile.TemporaryDirectory(prefix="gaitmil-bundle-") as tmp:
        _unpack(payload, Path(tmp), path)
        yield Path(tmp), signer
