#!/usr/bin/python3
"""A scripted primary for tests/replicate.test (docs/PROTOCOL.md, version 3).

It proves the secret and seals its frames like hashmmap-replicate, then
sends what a broken or stale primary might: a gap in sequence numbers,
records of an older epoch, a START of an older epoch.  It prints what the
replica answers, one line per event, and what the replica asks on its next
connection.

usage: repl_fake_primary.py PORT SECRET_FILE SCENARIO
scenario: gap | voids | old-record-epoch | stale-start | v2 (a primary of
protocol version 2: the replica must close without answering its CHALLENGE)
"""
import hashlib, hmac, os, socket, struct, sys

port, secret_file, scenario = int(sys.argv[1]), sys.argv[2], sys.argv[3]
secret = open(secret_file, "rb").read().rstrip(b"\r\n")
MAP_ID = bytes(range(16))


def mac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def frame(ftype, payload):
    return struct.pack(">IB", len(payload) + 1, ftype) + payload


class Conn:
    def __init__(self, sock):
        self.s, self.buf, self.seals = sock, b"", 0

    def read_frame(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return body
            d = self.s.recv(65536)
            if not d:
                return None
            self.buf += d

    def read_unsealed(self):  # skip SEAL frames: we trust our own test peer
        while True:
            body = self.read_frame()
            if body is None or body[0] != 12:
                return body

    def send_sealed(self, data):
        seal = mac(self.key_tx, struct.pack(">Q", self.seals) + data)
        self.s.sendall(data + frame(12, struct.pack(">Q", self.seals) + seal))
        self.seals += 1


def handshake(c, version=3):
    nonce_p = os.urandom(32)
    c.s.sendall(frame(1, struct.pack(">H", version) + nonce_p))
    auth = c.read_frame()
    if version != 3:
        print("answer", "auth" if auth else "closed", flush=True)
        return
    nonce_r = auth[3:35]
    c.s.sendall(frame(3, mac(secret, b"hashmmap-replicate v1 primary\0" + nonce_r + nonce_p)))
    c.key_tx = mac(secret, b"seal to replica\0" + nonce_p + nonce_r)
    resume = c.read_unsealed()
    has, next_seq, epoch = resume[1], struct.unpack(">Q", resume[18:26])[0], struct.unpack(">I", resume[26:30])[0]
    digest_seq, digest = struct.unpack(">QQ", resume[30:46])
    print("resume has_position=%d next_seq=%d epoch=%d digest_seq=%d digest=%s"
          % (has, next_seq, epoch, digest_seq, "set" if digest else "0"), flush=True)


def start(mode, seq, epoch):
    return frame(5, struct.pack(">B16sQIQQIIQQ", mode, MAP_ID, seq, epoch, 8 << 20, 8 << 20, 0, 1 << 20, 0, 0))


def record(seq, skipped, epoch, key):
    return frame(6, struct.pack(">QIIBIQI", seq, skipped, epoch, 1, 0, 0, len(key)) + key + struct.pack(">I", 1) + b"v")


def answer(c):
    """What the replica says before it closes (ERROR code, or the last ACK)."""
    c.s.settimeout(3)
    last = "closed"
    try:
        while True:
            body = c.read_unsealed()
            if body is None:
                break
            if body[0] == 11:
                code = struct.unpack(">H", body[1:3])[0]
                last = "error %d %s" % (code, body[7:].decode())
                break
            if body[0] == 10:
                last = "ack %d" % struct.unpack(">Q", body[1:9])[0]
    except socket.timeout:
        pass
    return last


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(4)
srv.settimeout(20)
c = Conn(srv.accept()[0])
if scenario == "v2":
    handshake(c, 2)
    sys.exit(0)
handshake(c)
epoch = 5 if scenario == "old-record-epoch" else 0
if scenario == "stale-start":
    c.send_sealed(start(1, 1, 0))
    print("answer", answer(c), flush=True)
    sys.exit(0)
c.send_sealed(start(2, 5, epoch) + frame(8, struct.pack(">QQQ", 5, 0, 0)))
if scenario == "gap":  # 6, then 50: seqs 7..49 never arrived
    c.send_sealed(record(6, 0, 0, b"k6") + record(50, 0, 0, b"k50"))
elif scenario == "voids":  # 6, then 9 after two void ones: nothing is missing
    c.send_sealed(record(6, 0, 0, b"k6") + record(9, 2, 0, b"k9") + frame(9, struct.pack(">QQ", 9, 0)))
elif scenario == "old-record-epoch":
    c.send_sealed(record(6, 0, 5, b"k6") + record(7, 0, 4, b"k7"))
print("answer", answer(c), flush=True)
c.s.close()
# The next connection: what does it ask for?
c = Conn(srv.accept()[0])
handshake(c)
c.s.close()
