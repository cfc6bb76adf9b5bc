#!/usr/bin/env python3
"""amqpd tells systemd it is ready (Type=notify): started with NOTIFY_SOCKET
pointing at a datagram socket of ours, it must send READY=1 once its
listeners are open - and the AMQP port must then accept connections."""
import os
import socket
import subprocess
import sys
import tempfile

top_builddir = os.environ.get("top_builddir", ".")
amqpd = os.path.join(top_builddir, "server", "amqpd")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(60)
        port = free_port()
        env = dict(os.environ, NOTIFY_SOCKET=path)
        proc = subprocess.Popen(
            [amqpd, "--listen", "127.0.0.1:%d" % port, "--management-listen", "none",
             "--data-dir", os.path.join(tmp, "data"),
             "--plugin-dir", os.path.join(top_builddir, "plugins", "lib")],
            env=env, stderr=open(os.path.join(tmp, "log"), "w"))
        try:
            msg = sock.recv(4096).decode()
            if "READY=1" not in msg.split("\n"):
                print("FAIL: got %r, no READY=1" % msg)
                return 1
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.close()
            print("ok: READY=1 received and port %d accepts" % port)
            return 0
        except socket.timeout:
            print("FAIL: no notification within 60 s")
            print(open(os.path.join(tmp, "log")).read())
            return 1
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
