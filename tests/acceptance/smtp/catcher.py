"""The SMTP server of the acceptance suite (tests/sso.rs): aiosmtpd on
127.0.0.1 that requires STARTTLS (with the given certificate) and then
authentication with one user and password, and writes every accepted mail
to OUT_DIR/NNNN.eml (written aside, then renamed: a file is whole when it
appears).

Usage: python catcher.py PORT CERT KEY USER PASSWORD_FILE OUT_DIR
One line per session event on standard output; the password is never printed.
"""

import asyncio
import itertools
import os
import signal
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main() -> None:
    port, cert, key, user, password_file, out_dir = sys.argv[1:7]
    with open(password_file, encoding="utf-8") as f:
        password = f.read().rstrip("\n")
    counter = itertools.count(1)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            n = next(counter)
            path = os.path.join(out_dir, "%04d.eml" % n)
            tmp = path + ".part"
            with open(tmp, "wb") as f:
                f.write(envelope.original_content or envelope.content)
            os.rename(tmp, path)
            print(
                "mail %d from %s to %s (tls: %s, auth: %s)"
                % (
                    n,
                    envelope.mail_from,
                    ",".join(envelope.rcpt_tos),
                    session.ssl is not None,
                    session.authenticated,
                ),
                flush=True,
            )
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        print("auth %s %s" % (mechanism, "accepted" if ok else "refused"), flush=True)
        return AuthResult(success=ok, handled=False)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=int(port),
        server_hostname="localhost",
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    print("listening on 127.0.0.1:%s" % port, flush=True)
    loop = asyncio.new_event_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    loop.run_until_complete(stop)
    controller.stop()


if __name__ == "__main__":
    main()
