"""Test helpers for dfscan/sources: a loopback web server for links, and C2PA signatures made here from a
throwaway CA (cryptography), never from a real signer."""
from __future__ import annotations

import datetime
import http.server
import threading
import time
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(args[2].root), **kwargs)  # (request, address, server)

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path.split("?")[0])
        if route is None:
            return super().do_GET()
        return route(self)

    do_HEAD = do_GET


def redirect(to: str):
    def answer(h: _Handler) -> None:
        h.send_response(302)
        h.send_header("Location", to)
        h.end_headers()
    return answer


def stall(seconds: float):
    """Announces a video, sends 100 bytes, then nothing for `seconds`."""
    def answer(h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "video/mp4")
        h.send_header("Content-Length", "1000000")
        h.end_headers()
        if h.command == "GET":
            h.wfile.write(b"\0" * 100)
            h.wfile.flush()
            time.sleep(seconds)
    return answer


class LoopbackServer:
    """http.server in a thread on 127.0.0.1: files from `root`, plus `routes` (path -> handler function)."""

    def __init__(self, root: Path):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.root, self.httpd.routes = root, {}
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.routes = self.httpd.routes

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class ThrowawayCA:
    """A root CA and one signing certificate (ES256), made for this test run only."""

    def __init__(self, name: str = "dfscan test"):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        def subject(cn: str):
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                              x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{name} org")])

        def usage(**on):
            keys = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                    "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
            return x509.KeyUsage(**{k: on.get(k, False) for k in keys})

        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

        def builder(cn: str, issuer, public):
            return (x509.CertificateBuilder().subject_name(subject(cn)).issuer_name(issuer).public_key(public)
                    .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                    .not_valid_after(now + datetime.timedelta(days=30))
                    .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))

        ca = (builder(f"{name} root", subject(f"{name} root"), ca_key.public_key())
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True).sign(ca_key, hashes.SHA256()))
        leaf = (builder(f"{name} signer", ca.subject, key.public_key())
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(usage(digital_signature=True), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False).sign(ca_key, hashes.SHA256()))
        pem = serialization.Encoding.PEM
        self.ca_pem = ca.public_bytes(pem).decode()
        self.chain_pem = leaf.public_bytes(pem).decode() + self.ca_pem
        self.key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode()

    def sign(self, source: Path, dest: Path, source_type: str = "trainedAlgorithmicMedia",
             generator: str = "TestVideoGen") -> Path:
        """A signed copy of an MP4: one c2pa.created action with this IPTC digital source type."""
        import c2pa

        manifest = {
            "claim_generator_info": [{"name": generator, "version": "1.0"}], "title": source.name,
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created", "softwareAgent": {"name": generator},
                "digitalSourceType": f"http://cv.iptc.org/newscodes/digitalsourcetype/{source_type}"}]}}],
        }
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, self.chain_pem.encode(),
                                                           self.key_pem.encode(), None))  # no timestamp server
        context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
        with c2pa.Builder(manifest, context=context) as builder, open(source, "rb") as src, open(dest, "w+b") as dst:
            builder.sign(signer, "video/mp4", src, dst)
        return dest


def flip_byte_in_media(path: Path) -> None:
    """Change one byte of the picture data (inside mdat), as tampering would."""
    data = bytearray(path.read_bytes())
    at = data.index(b"mdat") + 64
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
