"""A WebSocket client that does not read: its receive buffer is tiny (SO_RCVBUF, which Node
cannot set), so the server's own send buffer fills after a few kilobytes. Once stdin says
"read", it reads everything, prints one JSON line per text frame, then how the stream ended:
{"close": code} for a close frame, {"eof": true} for a connection dropped without one.

usage: python3 slow-ws-reader.py HOST PORT PATH BEARER_KEY"""
import base64, json, os, socket, struct, sys

host, port, path, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.connect((host, port))
nonce = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {key}\r\n\r\n").encode())
buf = b""
while b"\r\n\r\n" not in buf:
    chunk = s.recv(1)
    if not chunk: sys.exit("closed during handshake")
    buf += chunk
if b" 101 " not in buf.split(b"\r\n")[0]: sys.exit(f"refused: {buf!r}")
print(json.dumps({"open": True}), flush=True)
sys.stdin.readline()  # "read"
s.settimeout(30)
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
except (socket.timeout, ConnectionResetError):
    pass
i, end = 0, {"eof": True}
while i + 2 <= len(data):
    op, n = data[i] & 0x0F, data[i + 1] & 0x7F
    j = i + 2
    if n == 126: n, j = struct.unpack(">H", data[j:j + 2])[0], j + 2
    elif n == 127: n, j = struct.unpack(">Q", data[j:j + 8])[0], j + 8
    if j + n > len(data): break
    payload = data[j:j + n]
    if op == 1: print(payload.decode(), flush=True)
    if op == 8:
        end = {"close": struct.unpack(">H", payload[:2])[0] if n >= 2 else 1005}
        break
    i = j + n
print(json.dumps(end), flush=True)
