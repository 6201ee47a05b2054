#!/usr/bin/env bash
# Builds the seed corpora of every fuzz target under fuzz/corpus/<target>/.
#
# Seeds come from three places:
#   1. small hand-made records of every input format (written below, and
#      wrapped in gzip, CloudWatch Logs, awslogs base64 and KPL envelopes
#      by the embedded Python);
#   2. tests/fixtures/ and samples/ when they exist (every file is a seed
#      for the decoders and the framing target);
#   3. rules/*.yaml (rule-file target) and the filters found in them.
# Idempotent: seeds are named by content hash, so re-running adds nothing
# twice. Needs python3 (standard library only).
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)
corpus=${CORPUS_DIR:-corpus}
mkdir -p "$corpus"

python3 - "$root" "$corpus" <<'PY'
import base64, gzip, hashlib, json, os, pathlib, sys

root = pathlib.Path(sys.argv[1])
corpus = pathlib.Path(sys.argv[2])

def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def field(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload

def kpl(payloads):
    body = b"".join(field(1, f"pk-{i}".encode()) for i in range(len(payloads)))
    for i, p in enumerate(payloads):
        rec = varint(1 << 3 | 0) + varint(i) + field(3, p)
        body += field(3, rec)
    return b"\xf3\x89\x9a\xc2" + body + hashlib.md5(body).digest()

ct = {
    "eventVersion": "1.08",
    "userIdentity": {"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"},
    "eventTime": "2024-03-01T12:00:01Z",
    "eventSource": "signin.amazonaws.com",
    "eventName": "ConsoleLogin",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "203.0.113.9",
    "userAgent": "Mozilla/5.0",
    "errorMessage": "Failed authentication",
    "requestParameters": {"items": [{"x": 4}], "bucketName": "b"},
    "responseElements": {"ConsoleLogin": "Failure"},
    "additionalEventData": {"MFAUsed": "No"},
    "eventID": "e-1",
    "eventType": "AwsConsoleSignIn",
    "readOnly": False,
    "recipientAccountId": "111122223333",
}
ct_text = json.dumps(ct)
flow = "2 123456789012 eni-0a1b 198.51.100.7 10.0.0.5 40000 22 6 10 840 1709294400 1709294460 REJECT OK"
nodata = "2 123456789012 eni-0a1b - - - - - - - 1709294400 1709294460 - NODATA"
header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
custom = "${vpc-id} ${srcaddr} ${dstport} ${start} ${action} ${tcp-flags}"
secure = "Mar  1 12:00:01 ip-10-0-0-5 su: pam_unix(su:auth): authentication failure; logname=ec2-user uid=1000 euid=0 tty=/dev/pts/0 ruser=ec2-user rhost=  user=dbdev"
sshd = "2024-03-01T12:00:02Z ip-10-0-0-5 sshd[1234]: Failed password for invalid user admin from 203.0.113.9 port 52814 ssh2"

def logs(message_type, messages):
    return json.dumps({
        "messageType": message_type, "owner": "111122223333",
        "logGroup": "/aws/secure", "logStream": "i-0abc",
        "subscriptionFilters": ["f"],
        "logEvents": [{"id": str(i), "timestamp": 1709294400000 + i, "message": m}
                      for i, m in enumerate(messages)],
    })

cwl = logs("DATA_MESSAGE", [secure, sshd, flow, ct_text])
control = logs("CONTROL_MESSAGE", [])
eb = json.dumps({"version": "0", "detail-type": "AWS API Call via CloudTrail", "source": "aws.s3", "detail": ct})
s3 = json.dumps({"Records": [ct, ct | {"eventTime": "9999-12-31T23:59:60Z"}, {"eventTime": 5}]})
array = json.dumps([ct, "x", ct])
awslogs = json.dumps({"awslogs": {"data": base64.b64encode(gzip.compress(cwl.encode())).decode()}})

decoders = {
    "decode_auto": [ct_text, s3, array, cwl, gzip.compress(cwl.encode()), awslogs, eb,
                    flow + "\n" + nodata, header + "\n" + flow, secure, sshd,
                    kpl([gzip.compress(cwl.encode()), ct_text.encode(), b"\xff\xfe"]),
                    gzip.compress(gzip.compress(s3.encode())), "{}", "[]", "\x00"],
    "decode_cloudtrail": [ct_text, s3, array, gzip.compress(s3.encode()), '{"eventTime":"1969-12-31T23:59:59Z"}'],
    "decode_cloudwatch_logs": [cwl, control, gzip.compress(cwl.encode()), awslogs],
    "decode_eventbridge": [eb, json.dumps({"detail-type": "Other", "detail": {}})],
    "decode_kpl": [kpl([ct_text.encode(), flow.encode()]), kpl([gzip.compress(cwl.encode())]), b"\xf3\x89\x9a\xc2"],
    "decode_vpcflow": [flow, nodata, header + "\n" + flow, custom + "\nvpc-1 1.2.3.4 22 1709294400 ACCEPT 2",
                       flow.replace(" 840 ", " -840 ")],
    "decode_hostlog": [secure, sshd, "<34>1 2024-03-01T12:00:02Z host app - - - message"],
}
for target, seeds in decoders.items():
    for s in seeds:
        put(target, s)

framing = [ct_text + "\n" + ct_text, json.dumps(ct, indent=2), flow + "\r\n" + flow + "\n", "{ broken\n" + ct_text, s3]
for s in framing:
    put("framing", s)

filters = [
    '{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }\n' + ct_text,
    '{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }\n' + ct_text,
    '{ $.requestParameters.items[0].x > 3 || $.a IS NULL || $.b IS TRUE }\n' + ct_text,
    '{ $.sourceIPAddress = %^203\\.% }\n' + ct_text,
    '[version, account, eni, src, dst, sport, dport="22", proto, pkts, bytes>=100, start, end, action="REJECT", status]\n' + flow,
    '[..., action=REJECT, status]\n' + flow,
    '"authentication failure" ?sshd ?su -root\n' + secure,
    '%(a+)+$%\n' + "a" * 64 + "!",
    'ERROR\n[ERROR 400] bad',
    '" "\nanything',
]
for s in filters:
    put("filter", s)

configs = [
    "sources:\n  - type: file\n    paths: [samples]\n",
    "rules:\n  builtin: false\n  dirs: [rules]\nengine:\n  shards: 2\n  allowed_lateness: 15m\n  max_open_windows: 1000\n  shutdown_deadline: 10s\nsources:\n  - type: file\n    paths: ['-']\n    follow: true\n    decoder: vpcflow\nsinks:\n  alerts: {type: file, path: /tmp/a}\n  dead_letter: {type: stderr}\nmetrics:\n  listen: 127.0.0.1:9464\nlog:\n  level: debug\n  format: json\n",
]
for s in configs:
    put("config", s)

for extra in ("tests/fixtures", "samples"):
    base = root / extra
    if not base.is_dir():
        continue
    for path in sorted(base.rglob("*")):
        if not path.is_file() or path.stat().st_size > 1 << 20:
            continue
        data = path.read_bytes()
        put("decode_auto", data)
        put("framing", data)
        if path.suffix in (".yaml", ".yml"):
            put("config", data)
            put("rule_file", data)

for path in sorted((root / "rules").rglob("*.y*ml")):
    text = path.read_text()
    put("rule_file", text)
    for line in text.splitlines():
        if line.startswith("filter:"):
            pattern = line[len("filter:"):].strip().strip("'")
            put("filter", pattern + "\n" + ct_text)
print("seeded", {p.name: len(list(p.iterdir())) for p in sorted(corpus.iterdir())})
PY
