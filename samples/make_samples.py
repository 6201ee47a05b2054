#!/usr/bin/env python3
"""Generates the sample data under samples/ (deterministic, stdlib only).

    python3 samples/make_samples.py            # rewrites samples/{cloudtrail,vpcflow,hostlog}

The story (2024-03-01, account 111122223333), after the lab guides in the
project's seeds: an attacker brute-forces console sign-in from
198.51.100.23, gets in as `dbdev` without MFA, hits AccessDenied while
enumerating, makes a bucket public, grants itself a policy, opens SSH in a
security group and a NACL, stops CloudTrail logging, reads a secret,
schedules a KMS key for deletion, stops AWS Config, adds an internet
gateway, a route and a VPC attribute change, detaches an SCP and launches an
instance; on the network it port-scans and SSH-brute-forces a web host and
exfiltrates through the NAT gateway; on the database host it guesses `su`
passwords. An administrator then signs in as root to respond. Benign noise
(reads, MFA sign-ins, HeadBucket denials, log delivery) must not alert, and
three malformed records show up as dead letters. See samples/README.md.

The helpers (`ct`, `console_login`, `flow`, `cwl`, ...) are reused by
tests/fixtures/make_fixtures.py.
"""

import datetime
import gzip
import io
import json
import os
import uuid

ACCOUNT = "111122223333"
REGION = "us-east-1"
ATTACKER_IP = "198.51.100.23"
ADMIN_IP = "203.0.113.67"
APP_IP = "203.0.113.10"
UA_CONSOLE = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 Firefox/123.0"
UA_CLI = "aws-cli/2.15.10 Python/3.11.6 Linux/6.1.66 exe/x86_64.amzn.2023 prompt/off command/"
NS = uuid.UUID("6f1c2e0a-1b2c-4d5e-8f90-a1b2c3d4e5f6")
DAY = datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc)


def eid(*parts):
    return str(uuid.uuid5(NS, "/".join(str(p) for p in parts)))


def _id(prefix, *parts):
    return prefix + eid(*parts).replace("-", "")[:16].upper()


def at(h, m, s=0, ms=0):
    """Epoch seconds (float) of 2024-03-01 h:m:s.ms UTC."""
    return (DAY + datetime.timedelta(hours=h, minutes=m, seconds=s, milliseconds=ms)).timestamp()


def iso(ts):
    d = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    if d.microsecond:
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def iam_user(name, account=ACCOUNT):
    return {"type": "IAMUser", "principalId": _id("AIDA", "pid", name), "arn": f"arn:aws:iam::{account}:user/{name}",
            "accountId": account, "accessKeyId": _id("AKIA", "key", name), "userName": name}


def root(account=ACCOUNT, invoked_by=None):
    ident = {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root", "accountId": account}
    if invoked_by:
        ident["invokedBy"] = invoked_by
    return ident


ALICE = iam_user("alice")
DBDEV = iam_user("dbdev")


def ct(ts, source, name, ident, *, ip=APP_IP, ua=UA_CLI, req=None, resp=None, error_code=None, error_message=None,
       extra=None, read_only=False, event_type="AwsApiCall", account=ACCOUNT, region=REGION, time_text=None):
    """A CloudTrail record; `ts` is epoch seconds, `time_text` overrides eventTime."""
    record = {"eventVersion": "1.08", "userIdentity": ident, "eventTime": time_text or iso(ts),
              "eventSource": source, "eventName": name, "awsRegion": region, "sourceIPAddress": ip, "userAgent": ua}
    if error_code:
        record["errorCode"] = error_code
    if error_message:
        record["errorMessage"] = error_message
    record["requestParameters"] = req
    record["responseElements"] = resp
    if extra:
        record["additionalEventData"] = extra
    record["requestID"] = eid("req", ts, name, source)
    record["eventID"] = eid("evt", ts, name, source, ip, json.dumps(ident, sort_keys=True))
    record["readOnly"] = read_only
    record["eventType"] = event_type
    record["managementEvent"] = True
    record["recipientAccountId"] = account
    return record


def console_login(ts, *, ok, ident=None, mfa="No", ip=ATTACKER_IP, account=ACCOUNT):
    if ident is None:
        ident = {"type": "IAMUser", "principalId": "", "accountId": account, "accessKeyId": "",
                 "userName": "HIDDEN_DUE_TO_SECURITY_REASONS"}
    return ct(ts, "signin.amazonaws.com", "ConsoleLogin", ident, ip=ip, ua=UA_CONSOLE,
              error_message=None if ok else "Failed authentication",
              resp={"ConsoleLogin": "Success" if ok else "Failure"},
              extra={"LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true",
                     "MobileVersion": "No", "MFAUsed": mfa},
              event_type="AwsConsoleSignIn", account=account)


def denied(ts, name, source, *, ident=DBDEV, code="AccessDenied", ip=ATTACKER_IP, req=None):
    if code.endswith("UnauthorizedOperation"):
        message = "You are not authorized to perform this operation."
    else:
        message = (f"User: {ident.get('arn')} is not authorized to perform: {source.split('.')[0]}:{name} "
                   "because no identity-based policy allows the action")
    return ct(ts, source, name, ident, ip=ip, error_code=code, error_message=message, req=req,
              read_only=name.startswith(("Get", "List", "Describe", "Head")))


def eventbridge(record):
    detail_type = ("AWS Console Sign In via CloudTrail" if record["eventName"] == "ConsoleLogin"
                   else "AWS API Call via CloudTrail")
    return {"version": "0", "id": eid("eb", record["eventID"]), "detail-type": detail_type,
            "source": "aws." + record["eventSource"].split(".")[0], "account": record["recipientAccountId"],
            "time": record["eventTime"], "region": record["awsRegion"], "resources": [], "detail": record}


def cwl(stream, events, *, group="aws-cloudtrail-logs-111122223333", owner=ACCOUNT, filters=("trailwatch",)):
    """A CloudWatch Logs subscription DATA_MESSAGE; `events` are (epoch seconds, message text)."""
    return {"messageType": "DATA_MESSAGE", "owner": owner, "logGroup": group, "logStream": stream,
            "subscriptionFilters": list(filters),
            "logEvents": [{"id": str(37_000_000_000_000_000_000_000_000_000_000_000_000_000_000 + int(ts * 1000) * 100 + i),
                           "timestamp": int(round(ts * 1000)), "message": message}
                          for i, (ts, message) in enumerate(events)]}


def cwl_cloudtrail(stream, records, **kw):
    return cwl(stream, [(_epoch(r["eventTime"]), json.dumps(r, separators=(",", ":"))) for r in records], **kw)


def _epoch(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def syslog(ts, host, program, message):
    d = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return (ts, f"{d.strftime('%b')} {d.day:2d} {d.strftime('%H:%M:%S')} {host} {program}: {message}")


def su_failure(ts, host="ip-10-10-20-20", user="dbdev"):
    return syslog(ts, host, "su", "pam_unix(su:auth): authentication failure; logname= uid=1000 euid=0 tty=pts/0 "
                                  f"ruser=ec2-user rhost=  user={user}")


def sshd_failure(ts, src, host="ip-10-10-20-20", user="root", pid=4242):
    return syslog(ts, host, f"sshd[{pid}]", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 "
                                            f"tty=ssh ruser= rhost={src}  user={user}")


def sshd_failed_password(ts, src, host="ip-10-10-20-20", user="root", port=52144, pid=4242):
    return syslog(ts, host, f"sshd[{pid}]", f"Failed password for {user} from {src} port {port} ssh2")


def su_session(ts, host="ip-10-10-20-20"):
    return syslog(ts, host, "su", "pam_unix(su:session): session opened for user dbdev by ec2-user(uid=1000)")


FLOW_ACCOUNT = ACCOUNT
V2_HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"


def flow(src, dst, sport, dport, action, start, *, proto=6, packets=1, nbytes=40, eni="eni-0a1b2c3d4e5f60001",
         account=FLOW_ACCOUNT, duration=60):
    return (f"2 {account} {eni} {src} {dst} {sport} {dport} {proto} {packets} {nbytes} "
            f"{int(start)} {int(start) + duration} {action} OK")


def json_line(value):
    return json.dumps(value, separators=(",", ":"))


def write_text(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def write_gzip(path, text):
    """gzip with mtime 0 and no file name, so output is byte-for-byte reproducible."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def s3_log_file(records):
    return json.dumps({"Records": records}, separators=(",", ":"))


# --------------------------------------------------------------------------
# The story
# --------------------------------------------------------------------------

def s3_file_records():
    """cloudtrail/…json.gz: console brute force, the MFA-less sign-in, benign noise."""
    records = []
    # Benign: alice signs in with MFA and reads things; log delivery is denied (CIS 4.1 exclusion).
    records.append(console_login(at(11, 58, 2), ok=True, ident=ALICE, mfa="Yes", ip=ADMIN_IP))
    records.append(ct(at(11, 58, 40), "ec2.amazonaws.com", "DescribeInstances", ALICE, ip=ADMIN_IP, ua=UA_CONSOLE, read_only=True))
    records.append(denied(at(11, 59, 0), "PutObject", "s3.amazonaws.com", ident={"type": "AWSService", "invokedBy": "delivery.logs.amazonaws.com"},
                          ip="delivery.logs.amazonaws.com", req={"bucketName": "vpc-flow-logs-111122223333"}))
    # The attacker guesses passwords: six failures in 12:00-12:04 from one address.
    for i, (m, s) in enumerate([(0, 11), (0, 38), (1, 4), (1, 52), (2, 30), (3, 9)]):
        records.append(console_login(at(12, m, s), ok=False))
    # ... and gets in as dbdev, who has no MFA device.
    records.append(console_login(at(12, 4, 20), ok=True, ident=DBDEV, mfa="No"))
    # Benign: HeadBucket probes are denied all the time (excluded from CIS 4.1).
    records.append(denied(at(12, 6, 0), "HeadBucket", "s3.amazonaws.com", ident=ALICE, ip=APP_IP,
                          req={"bucketName": "securityautomationtestbucket0042"}))
    return records


def json_lines_records():
    """cloudtrail/api-activity.jsonl: dbdev enumerates with AccessDenied bursts."""
    calls = [("ListUsers", "iam.amazonaws.com"), ("ListRoles", "iam.amazonaws.com"),
             ("GetAccountAuthorizationDetails", "iam.amazonaws.com"), ("ListSecrets", "secretsmanager.amazonaws.com"),
             ("DescribeTrails", "cloudtrail.amazonaws.com"), ("ListKeys", "kms.amazonaws.com"),
             ("ListFunctions20150331", "lambda.amazonaws.com"), ("DescribeDBInstances", "rds.amazonaws.com"),
             ("GetBucketPolicy", "s3.amazonaws.com"), ("ListDetectors", "guardduty.amazonaws.com"),
             ("DescribeConfigurationRecorders", "config.amazonaws.com")]
    records = [denied(at(12, 5, 10 + 4 * i), name, src) for i, (name, src) in enumerate(calls)]
    records.append(denied(at(12, 6, 30), "DescribeInstances", "ec2.amazonaws.com", code="Client.UnauthorizedOperation"))
    records.insert(3, ct(at(12, 5, 20), "sts.amazonaws.com", "GetCallerIdentity", DBDEV, ip=ATTACKER_IP, read_only=True))
    return records


def eventbridge_records():
    """cloudtrail/eventbridge.jsonl: the attacker changes things."""
    return [
        ct(at(12, 10, 5), "s3.amazonaws.com", "PutBucketAcl", DBDEV, ip=ATTACKER_IP, ua="[S3Console/0.4]",
           req={"bucketName": "securityautomationtestbucket0042", "Host": "securityautomationtestbucket0042.s3.amazonaws.com", "acl": ""}),
        ct(at(12, 11, 0), "iam.amazonaws.com", "CreatePolicy", DBDEV, ip=ATTACKER_IP,
           req={"policyName": "ec2-all", "policyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"ec2:*\",\"Resource\":\"*\"}]}"}),
        ct(at(12, 11, 20), "iam.amazonaws.com", "AttachUserPolicy", DBDEV, ip=ATTACKER_IP,
           req={"userName": "dbdev", "policyArn": "arn:aws:iam::111122223333:policy/ec2-all"}),
        ct(at(12, 12, 0), "ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", DBDEV, ip=ATTACKER_IP,
           req={"groupId": "sg-0123456789abcdef0", "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}}, resp={"_return": True}),
        ct(at(12, 12, 30), "ec2.amazonaws.com", "CreateNetworkAclEntry", DBDEV, ip=ATTACKER_IP,
           req={"networkAclId": "acl-0a1b2c3d4e5f67890", "ruleNumber": 90, "egress": False, "ruleAction": "allow",
                "protocol": "6", "portRange": {"from": 22, "to": 22}, "cidrBlock": "0.0.0.0/0"}),
        ct(at(12, 13, 10), "cloudtrail.amazonaws.com", "StopLogging", DBDEV, ip=ATTACKER_IP,
           req={"name": "arn:aws:cloudtrail:us-east-1:111122223333:trail/myCloudTrail"}),
        # Benign: alice looks at the trail (read-only, no alert).
        ct(at(12, 13, 40), "cloudtrail.amazonaws.com", "GetTrailStatus", ALICE, ip=ADMIN_IP, read_only=True,
           req={"name": "myCloudTrail"}),
    ]


def cwl_records():
    """cloudtrail/cwl-subscription.gz: the rest of the attack, then the root response."""
    return [
        ct(at(12, 14, 2), "secretsmanager.amazonaws.com", "GetSecretValue", DBDEV, ip=ATTACKER_IP, read_only=True,
           req={"secretId": "TopSecretInfo"}),
        ct(at(12, 14, 30), "secretsmanager.amazonaws.com", "DescribeSecret", DBDEV, ip=ATTACKER_IP, read_only=True,
           req={"secretId": "TopSecretInfo"}),
        ct(at(12, 15, 30), "ec2.amazonaws.com", "RunInstances", DBDEV, ip=ATTACKER_IP,
           req={"instancesSet": {"items": [{"imageId": "ami-0abcdef1234567890", "minCount": 4, "maxCount": 4}]}, "instanceType": "p3.16xlarge"}),
        ct(at(12, 16, 0), "kms.amazonaws.com", "ScheduleKeyDeletion", DBDEV, ip=ATTACKER_IP,
           req={"keyId": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", "pendingWindowInDays": 7}),
        ct(at(12, 16, 30), "config.amazonaws.com", "StopConfigurationRecorder", DBDEV, ip=ATTACKER_IP,
           req={"configurationRecorderName": "default"}),
        ct(at(12, 17, 0), "ec2.amazonaws.com", "CreateInternetGateway", DBDEV, ip=ATTACKER_IP,
           resp={"internetGateway": {"internetGatewayId": "igw-0123456789abcdef0"}}),
        ct(at(12, 17, 20), "ec2.amazonaws.com", "CreateRoute", DBDEV, ip=ATTACKER_IP,
           req={"routeTableId": "rtb-0123456789abcdef0", "destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-0123456789abcdef0"}),
        ct(at(12, 17, 40), "ec2.amazonaws.com", "ModifyVpcAttribute", DBDEV, ip=ATTACKER_IP,
           req={"vpcId": "vpc-0123456789abcdef0", "enableDnsSupport": {"value": False}}),
        ct(at(12, 18, 10), "organizations.amazonaws.com", "DetachPolicy", DBDEV, ip=ATTACKER_IP,
           req={"policyId": "p-examplepolicyid111", "targetId": "ou-ab12-cdef3456"}),
        # The responder signs in as root (with MFA) at 12:40 and deletes the rogue access.
        console_login(at(12, 40, 0), ok=True, ident=root(), mfa="Yes", ip=ADMIN_IP),
        ct(at(12, 41, 0), "iam.amazonaws.com", "DeleteLoginProfile", root(), ip=ADMIN_IP, ua=UA_CONSOLE, req={"userName": "dbdev"}),
        # Benign: a service acting for root does not count as root usage.
        ct(at(12, 42, 0), "s3.amazonaws.com", "GetBucketAcl", root(invoked_by="cloudtrail.amazonaws.com"),
           ip="cloudtrail.amazonaws.com", read_only=True, req={"bucketName": "aws-cloudtrail-logs-111122223333"}),
    ]


WEB_ENI = "eni-0a1b2c3d4e5f60001"
NAT_ENI = "eni-0fe1dc2ba3b4c5d60"
SCANNER = "203.0.113.50"
SSH_BRUTE = "192.0.2.77"


def default_flow_lines():
    lines = [V2_HEADER]
    # Benign web traffic to the load balancer ENI.
    for i in range(8):
        lines.append(flow(f"198.51.100.{100 + i}", "10.0.1.5", 50000 + i, 443, "ACCEPT", at(12, 19, 5 * i), packets=12, nbytes=8400, eni=WEB_ENI))
    # Port scan: 120 distinct ports rejected in 12:20-12:22 (vpc-port-scan, vpc-rejected-flow-spike).
    for i in range(120):
        lines.append(flow(SCANNER, "10.0.1.5", 61000, 1 + i, "REJECT", at(12, 20, i), eni=WEB_ENI))
    # SSH brute force: 12 rejected SYNs to port 22 across the hour (vpc-ssh-rejects).
    for i in range(12):
        lines.append(flow(SSH_BRUTE, "10.0.1.5", 40000 + i, 22, "REJECT", at(12, 21 + 3 * i, 7), eni=WEB_ENI))
    # A NODATA row (no traffic in the interval).
    lines.append(f"2 {FLOW_ACCOUNT} eni-0b2c3d4e5f6a70002 - - - - - - - {int(at(12, 25))} {int(at(12, 26))} - NODATA")
    return lines


CUSTOM_FIELDS = ("version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport dstport "
                 "pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status flow-direction traffic-path")


def custom_flow(src, dst, sport, dport, action, start, nbytes, packets, *, pkt_src, pkt_dst, direction, path="-",
                eni=NAT_ENI, instance="-", flags=2):
    return " ".join(str(x) for x in [
        5, "vpc-0123456789abcdef0", "subnet-0a1b2c3d4e5f60001", instance, eni, FLOW_ACCOUNT, "IPv4", src, dst, sport, dport,
        pkt_src, pkt_dst, 6, nbytes, packets, int(start), int(start) + 60, action, flags, "OK", direction, path])


def custom_flow_lines():
    lines = [CUSTOM_FIELDS]
    # Exfiltration through the NAT gateway: 3 x 900 kB from 10.0.2.15 to 203.0.113.200 (vpc-egress-threshold).
    for i in range(3):
        lines.append(custom_flow("10.0.2.15", "203.0.113.200", 43210 + i, 443, "ACCEPT", at(12, 30 + 2 * i), 900000, 650,
                                 pkt_src="10.0.2.15", pkt_dst="203.0.113.200", direction="egress", path=8))
    # Benign: the reply traffic (public to private) and a small software update download.
    lines.append(custom_flow("203.0.113.200", "10.0.2.15", 443, 43210, "ACCEPT", at(12, 30), 5000000, 3500,
                             pkt_src="203.0.113.200", pkt_dst="10.0.2.15", direction="ingress", flags=18))
    lines.append(custom_flow("10.0.2.16", "198.51.100.80", 43300, 443, "ACCEPT", at(12, 31), 12000, 20,
                             pkt_src="10.0.2.16", pkt_dst="198.51.100.80", direction="egress", path=8))
    # Malformed: a record cut short (field count differs from the header).
    lines.append(f"5 vpc-0123456789abcdef0 subnet-0a1b2c3d4e5f60001 - {NAT_ENI} {FLOW_ACCOUNT} IPv4 10.0.2.15")
    return lines


DB_INSTANCE = "i-0a1b2c3d4e5f67890"
WEB_INSTANCE = "i-0fedcba9876543210"


def host_messages():
    db = cwl(DB_INSTANCE, [
        su_session(at(12, 34, 0)),
        su_failure(at(12, 35, 23)), su_failure(at(12, 35, 32)), su_failure(at(12, 35, 41)), su_failure(at(12, 35, 52)),
    ], group="/var/log/secure", filters=("database server authentication failures",))
    web = cwl(WEB_INSTANCE, [
        sshd_failed_password(at(12, 36, 1), SSH_BRUTE, host="ip-10-0-1-5", pid=5100),
        sshd_failure(at(12, 36, 1), SSH_BRUTE, host="ip-10-0-1-5", pid=5100),
        sshd_failure(at(12, 37, 30), SSH_BRUTE, host="ip-10-0-1-5", pid=5101),
        syslog(at(12, 38, 0), "ip-10-0-1-5", "sshd[5102]", "Accepted publickey for ec2-user from 203.0.113.67 port 50022 ssh2: RSA SHA256:abc"),
    ], group="/var/log/secure", filters=("database server authentication failures",))
    control = {"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logStream": "",
               "subscriptionFilters": [], "logEvents": [{"id": "", "timestamp": int(at(12, 0) * 1000),
                                                          "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}
    return [control, db, web]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ct_dir = os.path.join(here, "cloudtrail")
    write_gzip(os.path.join(ct_dir, "111122223333_CloudTrail_us-east-1_20240301T1205Z_sample.json.gz"), s3_file_records_text())
    jsonl = [json_line(r) for r in json_lines_records()]
    # Malformed: a line cut off mid-record, and a record whose eventTime does not parse.
    jsonl.insert(5, json_line(denied(at(12, 5, 30), "ListGroups", "iam.amazonaws.com"))[:140])
    bad_time = denied(at(12, 5, 31), "ListPolicies", "iam.amazonaws.com")
    bad_time["eventTime"] = "2024-03-01 12:05:31"
    jsonl.insert(9, json_line(bad_time))
    write_text(os.path.join(ct_dir, "api-activity.jsonl"), jsonl)
    write_text(os.path.join(ct_dir, "eventbridge.jsonl"), [json_line(eventbridge(r)) for r in eventbridge_records()])
    write_gzip(os.path.join(ct_dir, "cwl-subscription.gz"),
               json_line(cwl_cloudtrail("111122223333_CloudTrail_us-east-1", cwl_records())) + "\n")
    write_text(os.path.join(here, "vpcflow", "eni-flows.log"), default_flow_lines())
    write_text(os.path.join(here, "vpcflow", "nat-custom-format.log"), custom_flow_lines())
    write_gzip(os.path.join(here, "hostlog", "secure-cwl.gz"), "".join(json_line(m) + "\n" for m in host_messages()))


def s3_file_records_text():
    return s3_log_file(s3_file_records())


if __name__ == "__main__":
    main()
