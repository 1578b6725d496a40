"""A small Matrix client for the VM tests, speaking the client-server API
over HTTPS with the standard library only.

It discovers the homeserver from https://<server name>/.well-known/matrix/client
as real clients do (or takes --homeserver), logs in with a password, and
prints JSON results for the test script to check. Every unexpected HTTP
status ends the program with a message naming the request.

Access tokens are kept in /tmp/matrix-test-client-tokens.json and reused
while the server accepts them (as clients keep their session), which also
shows that sessions survive a server restart.

Messages are sent as m.room.encrypted events (what an E2E client puts on
the wire): the server never sees plaintext, and the test checks that it
stores and relays them.
"""

import argparse
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
TOKENS = "/tmp/matrix-test-client-tokens.json"


def fail(message):
    print(f"matrix-test-client: {message}", file=sys.stderr)
    sys.exit(1)


class Client:
    def __init__(self, base_url):
        self.base = base_url.rstrip("/")
        self.token = None
        self.user_id = None
        self.ctx = ssl.create_default_context(cafile=CA_BUNDLE)

    def request(self, method, path, body=None, expect=(200,)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=60) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, payload = err.code, err.read()
        try:
            parsed = json.loads(payload) if payload else {}
        except ValueError:
            parsed = {"raw": payload.decode(errors="replace")}
        if expect is not None and status not in expect:
            fail(f"{method} {path}: HTTP {status}: {payload[:500]!r}")
        return status, parsed

    def login(self, user, password):
        """Resumes the saved session of `user` if the server still accepts
        it, otherwise logs in with the password and saves the session."""
        key = f"{self.base} {user}"
        saved = load_tokens().get(key)
        if saved:
            self.token = saved["access_token"]
            status, who = self.request("GET", "/_matrix/client/v3/account/whoami", expect=None)
            if status == 200 and who.get("device_id") == saved["device_id"]:
                self.user_id = saved["user_id"]
                self.device_id = saved["device_id"]
                return self
            self.token = None
        _, body = self.request(
            "POST",
            "/_matrix/client/v3/login",
            dict(password_login(user, password), initial_device_display_name="ospw-matrix VM test"),
        )
        self.token = body["access_token"]
        self.user_id = body["user_id"]
        self.device_id = body["device_id"]
        tokens = load_tokens()
        tokens[key] = {k: body[k] for k in ("access_token", "user_id", "device_id")}
        with open(TOKENS + ".new", "w") as f:
            json.dump(tokens, f)
        os.replace(TOKENS + ".new", TOKENS)
        return self

    def upload_keys(self):
        """Publishes this device's identity keys and one one-time key, as an
        E2E client does after logging in (the values are placeholders: the
        server stores and serves them without decrypting anything)."""
        device_keys = {
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                f"curve25519:{self.device_id}": "vmtest-identity-curve25519",
                f"ed25519:{self.device_id}": "vmtest-identity-ed25519",
            },
            "signatures": {self.user_id: {f"ed25519:{self.device_id}": "vmtest-signature"}},
        }
        one_time_keys = {
            "signed_curve25519:AAAAAQ": {
                "key": "vmtest-one-time-key",
                "signatures": {self.user_id: {f"ed25519:{self.device_id}": "vmtest-signature"}},
            }
        }
        _, body = self.request(
            "POST",
            "/_matrix/client/v3/keys/upload",
            {"device_keys": device_keys, "one_time_keys": one_time_keys},
        )
        return body.get("one_time_key_counts", {})

    def send_encrypted(self, room_id, text):
        txn = uuid.uuid4().hex
        content = {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": text,
            "device_id": "VMTEST",
            "sender_key": "vmtest-sender-key",
            "session_id": "vmtest-session",
        }
        path = f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.encrypted/{txn}"
        _, body = self.request("PUT", path, content)
        return body["event_id"]

    def encryption_state(self, room_id, expect=(200,)):
        """The room's m.room.encryption state: (HTTP status, content)."""
        path = f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.encryption/"
        return self.request("GET", path, expect=expect)

    def timeline(self, room_id):
        """The room's latest events (up to 100), newest first."""
        path = f"/_matrix/client/v3/rooms/{q(room_id)}/messages?dir=b&limit=100"
        _, body = self.request("GET", path)
        return body.get("chunk", [])

    def timeline_ciphertexts(self, room_id):
        return [
            e["content"].get("ciphertext")
            for e in self.timeline(room_id)
            if e.get("type") == "m.room.encrypted"
        ]


def load_tokens():
    try:
        with open(TOKENS) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def q(value):
    return urllib.parse.quote(value, safe="")


def password_login(user, password):
    """The body of a password login."""
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }


def discover(server_name):
    ctx = ssl.create_default_context(cafile=CA_BUNDLE)
    url = f"https://{server_name}/.well-known/matrix/client"
    with urllib.request.urlopen(url, context=ctx, timeout=60) as resp:
        body = json.loads(resp.read())
    return body["m.homeserver"]["base_url"]


def make_client(args):
    return Client(args.homeserver or discover(args.server_name))


def cmd_login(args):
    c = make_client(args).login(args.user, args.password)
    print(json.dumps({"user_id": c.user_id}))


def print_status(args, path, body):
    """POSTs `body` without a session, whatever the answer; prints the HTTP
    status and the error code."""
    status, reply = make_client(args).request("POST", path, body, expect=None)
    print(json.dumps({"status": status, "errcode": reply.get("errcode")}))


def cmd_try_login(args):
    """Attempts a password login without keeping the session; prints the
    HTTP status (for wrong passwords and unknown users)."""
    print_status(args, "/_matrix/client/v3/login", password_login(args.user, args.password))


def cmd_register(args):
    print_status(
        args,
        "/_matrix/client/v3/register",
        {
            "username": args.user,
            "password": "a-password-nobody-should-get-0",
            "auth": {"type": "m.login.dummy"},
        },
    )


def cmd_conversation(args):
    """Alice creates a private room and invites Bob; the room must be
    encrypted without asking; Bob joins; Alice sends messages that Bob
    receives through /sync."""
    alice = make_client(args).login(args.alice, args.alice_password)
    bob = make_client(args).login(args.bob, args.bob_password)

    # Key exchange, as E2E clients do it: Alice publishes her device's
    # keys; Bob finds her device and claims a one-time key for a session.
    counts = alice.upload_keys()
    _, queried = bob.request(
        "POST", "/_matrix/client/v3/keys/query", {"device_keys": {alice.user_id: []}}
    )
    alice_devices = queried.get("device_keys", {}).get(alice.user_id, {})
    _, claimed = bob.request(
        "POST",
        "/_matrix/client/v3/keys/claim",
        {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}},
    )
    claimed_keys = claimed.get("one_time_keys", {}).get(alice.user_id, {}).get(alice.device_id, {})

    _, created = alice.request(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "private_chat", "name": "VM test", "invite": [bob.user_id]},
    )
    room_id = created["room_id"]

    _, encryption = alice.encryption_state(room_id)

    bob.request("POST", f"/_matrix/client/v3/join/{q(room_id)}", {})

    sent = [f"vmtest-ciphertext-{i}-{uuid.uuid4().hex}" for i in range(3)]
    for text in sent:
        alice.send_encrypted(room_id, text)

    received = []
    since = None
    deadline = time.time() + 60
    while time.time() < deadline and set(received) != set(sent):
        path = "/_matrix/client/v3/sync?timeout=5000"
        if since:
            path += "&since=" + q(since)
        _, sync = bob.request("GET", path)
        since = sync.get("next_batch")
        room = sync.get("rooms", {}).get("join", {}).get(room_id, {})
        for event in room.get("timeline", {}).get("events", []):
            if event.get("type") == "m.room.encrypted":
                text = event["content"].get("ciphertext")
                if text in sent and text not in received:
                    received.append(text)

    print(
        json.dumps(
            {
                "room_id": room_id,
                "encryption": encryption,
                "one_time_key_counts": counts,
                "device_keys_found": alice.device_id in alice_devices,
                "one_time_key_claimed": "signed_curve25519:AAAAAQ" in claimed_keys,
                "sent": sent,
                "received": received,
            }
        )
    )


def cmd_history(args):
    c = make_client(args).login(args.user, args.password)
    _, rooms = c.request("GET", "/_matrix/client/v3/joined_rooms")
    print(
        json.dumps(
            {
                "joined_rooms": rooms.get("joined_rooms", []),
                "ciphertexts": c.timeline_ciphertexts(args.room_id),
            }
        )
    )


def cmd_room_events(args):
    """What the server holds for a room, as one of its members sees it over
    HTTP: the m.room.encryption state (or null), the types of the
    message-like events, and whether `needle` (a message a real E2E client
    sent) appears anywhere in them in clear."""
    c = make_client(args).login(args.user, args.password)
    status, encryption = c.encryption_state(args.room_id, expect=(200, 404))
    chunk = c.timeline(args.room_id)
    print(
        json.dumps(
            {
                "encryption": encryption if status == 200 else None,
                "message_types": sorted(
                    {e.get("type") for e in chunk if "state_key" not in e}
                ),
                "needle_in_clear": args.needle in json.dumps(chunk),
            }
        )
    )


def cmd_turn_credentials(args):
    c = make_client(args).login(args.user, args.password)
    _, body = c.request("GET", "/_matrix/client/v3/voip/turnServer")
    print(json.dumps(body))


def cmd_is_admin(args):
    c = make_client(args).login(args.user, args.password)
    _, body = c.request(
        "GET", f"/_synapse/admin/v1/users/{q(args.target)}/admin"
    )
    print(json.dumps(body))


def main():
    parser = argparse.ArgumentParser(prog="matrix-test-client")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--server-name", help="discover the homeserver from this server name")
    where.add_argument("--homeserver", help="the homeserver's base URL")
    sub = parser.add_subparsers(dest="command", required=True)

    # name: (function, positional arguments)
    commands = {
        "login": (cmd_login, ["user", "password"]),
        "try-login": (cmd_try_login, ["user", "password"]),
        "register": (cmd_register, ["user"]),
        "conversation": (cmd_conversation, ["alice", "alice_password", "bob", "bob_password"]),
        "history": (cmd_history, ["user", "password", "room_id"]),
        "room-events": (cmd_room_events, ["user", "password", "room_id", "needle"]),
        "turn-credentials": (cmd_turn_credentials, ["user", "password"]),
        "is-admin": (cmd_is_admin, ["user", "password", "target"]),
    }
    for name, (func, positionals) in commands.items():
        p = sub.add_parser(name)
        for positional in positionals:
            p.add_argument(positional)
        p.set_defaults(func=func)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
