"""The customer's key folder (``PaillierKeys/``): ``public_key.json`` and ``private_key.json``.

The private key is written atomically with mode 0600, is refused when group or others can
read it (as OpenSSH refuses such identity files), and an existing pair is never replaced
unless the caller says ``force``. The public key can be exported on its own, with the proof
that its modulus is well formed; :meth:`KeyStore.prove` adds that proof to a version-2 folder.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from . import files
from .errors import KeyFileError, OutputError, PpmlError
from .paillier.keys import KeyVersionError, PrivateKey, PublicKey, check_key_size, generate_keypair

PUBLIC_NAME = "public_key.json"
PRIVATE_NAME = "private_key.json"


class KeyStore:
    def __init__(self, folder="PaillierKeys"):
        self.folder = Path(folder)
        self.public_path = self.folder / PUBLIC_NAME
        self.private_path = self.folder / PRIVATE_NAME

    def exists(self) -> bool:
        return self.public_path.exists() or self.private_path.exists()

    def create(self, bits: int, force: bool = False, allow_weak: bool = False) -> tuple[PublicKey, PrivateKey]:
        """Generate and store a fresh pair; refuses to replace an existing one without ``force``.

        Crash-safe order: a run killed at any point leaves the old pair, a private key alone
        (whose public key :meth:`load_public` rebuilds), or the new pair — never a public key
        without its private half, nor the halves of two different pairs. The folder is locked
        meanwhile, so two runs never both create a pair there.
        """
        with self._lock():
            return self._create(bits, force, allow_weak)

    def _lock(self):
        return files.output_lock(self.private_path, folder_mode=0o700)

    def _create(self, bits: int, force: bool, allow_weak: bool) -> tuple[PublicKey, PrivateKey]:
        if self.exists() and not force:
            raise KeyFileError("a key pair already exists here; refusing to overwrite it (use --force)",
                               str(self.folder))
        public, private = generate_keypair(bits, allow_weak=allow_weak)
        files.remove_stale_temps(self.public_path)
        try:
            os.unlink(self.public_path)  # (force) the old public key goes first
        except FileNotFoundError:
            pass
        except OSError as e:
            raise KeyFileError(f"cannot replace: {e.strerror}", str(self.public_path)) from None
        files.atomic_write_bytes(self.private_path, files.dump_json(private.to_dict()).encode(), mode=0o600)
        files.atomic_write_bytes(self.public_path, files.dump_json(public.to_dict()).encode(), mode=0o644)
        return public, private

    def load_public(self, allow_weak: bool = False) -> PublicKey:
        """The public key; if only the private key is there, the public key is rebuilt from it
        and written (see :meth:`_restore_public`)."""
        try:
            if not self.public_path.exists() and self.private_path.exists():
                return self._restore_public(allow_weak)
            return load_public_key(self.public_path, allow_weak)
        except KeyVersionError as e:
            raise e.for_folder(str(self.folder)) from None

    def load_private(self, allow_weak: bool = False) -> PrivateKey:
        public = self.load_public(allow_weak)
        check_private_mode(self.private_path)
        d = _read(self.private_path)
        try:
            return PrivateKey.from_dict(d, public)
        except KeyVersionError as e:
            raise e.for_folder(str(self.folder)).with_source(str(self.private_path)) from None
        except PpmlError as e:
            raise e.with_source(str(self.private_path))

    def prove(self, allow_weak: bool = False) -> PublicKey:
        """Give the stored pair (version 2 or 3) a fresh modulus proof and write both files as
        version 3: the key itself (``n``, ``h_s``, the factors) is kept, so documents and
        answers made with it stay valid. The private key is checked as at every load."""
        with self._lock():
            check_private_mode(self.private_path)
            try:
                private = PrivateKey.restore(_read(self.private_path), upgrade=True)
                check_key_size(private.public.bits, allow_weak)
            except PpmlError as e:
                raise e.with_source(str(self.private_path))
            if self.public_path.exists():
                d = _read(self.public_path)
                if not isinstance(d, dict) or d.get("fingerprint") != private.fingerprint:
                    raise KeyFileError("is not the public half of the private key beside it (delete it and it is "
                                       "rebuilt from the private key)", str(self.public_path))
            files.atomic_write_bytes(self.private_path, files.dump_json(private.to_dict()).encode(), mode=0o600)
            files.atomic_write_bytes(self.public_path, files.dump_json(private.public.to_dict()).encode(),
                                     mode=0o644)
        return private.public

    def load_or_create(self, bits: int, allow_weak: bool = False) -> tuple[PublicKey, PrivateKey, bool]:
        """The stored pair, or a new one if the folder holds none; the flag says which."""
        with self._lock():  # two first runs at once: one creates the pair, the other then loads it
            if self.exists():
                private = self.load_private(allow_weak)
                return private.public, private, False
            public, private = self._create(bits, False, allow_weak)
        return public, private, True

    def _restore_public(self, allow_weak: bool) -> PublicKey:
        """A private key whose public half is missing (a run killed between writing the two
        files, or a deleted file): rebuild the public key from it instead of refusing to run."""
        check_private_mode(self.private_path)
        try:
            private = PrivateKey.restore(_read(self.private_path))
            check_key_size(private.public.bits, allow_weak)
        except PpmlError as e:
            raise e.with_source(str(self.private_path))
        try:
            files.atomic_write_bytes(self.public_path, files.dump_json(private.public.to_dict()).encode(),
                                     mode=0o644, overwrite=False)
        except OutputError:
            if not self.public_path.exists():
                raise
            return load_public_key(self.public_path, allow_weak)  # another run restored it first
        return private.public


def load_public_key(path, allow_weak: bool = False) -> PublicKey:
    d = _read(path)
    try:
        return PublicKey.from_dict(d, allow_weak=allow_weak)
    except PpmlError as e:
        raise e.with_source(files.display_name(path))


def check_private_mode(path) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise KeyFileError("private key not found beside its public key (restore it from a backup, or "
                           "create a new pair with `python -m ppml keygen --force`)", str(path)) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"permissions {stat.S_IMODE(st.st_mode):04o} are too open: the private key "
                           f"must be readable by its owner only (chmod 600 {path})", str(path))


def _read(path):
    if str(path) != files.STDIO and not Path(path).exists():
        raise KeyFileError("key file not found (run CustomerEncrypts.py first to create keys)", str(path))
    try:
        return files.read_json(path)
    except PpmlError as e:
        raise KeyFileError(e.message, e.source) from None
