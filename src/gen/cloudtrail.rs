//! CloudTrail management events, one JSON record per line (about 1 to
//! 1.5 KB each), shaped like what CloudTrail delivers: nested
//! `userIdentity` with `sessionContext`, `requestParameters`,
//! `responseElements`, `tlsDetails` and a real-looking `userAgent`.
//!
//! Mix: read-only `Describe*` / `Get*` / `List*` calls dominate; `AssumeRole`,
//! `ConsoleLogin`, `PutObject`, KMS and Secrets Manager calls follow; about
//! 3% of calls fail with `AccessDenied` or `Client.UnauthorizedOperation`;
//! about 0.5% are CIS-relevant changes (IAM policies, trails, KMS keys,
//! bucket policies, security groups, NACLs, routes, VPCs...); a root
//! sign-in now and then; and every few thousand events a burst of 5 to 12
//! console sign-in failures from one address.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::{private_ip, public_ip, rfc3339, Clock, GenOptions, Rng};

const ACCOUNTS: [&str; 8] = [
    "111122223333",
    "123456789012",
    "210987654321",
    "333344445555",
    "444455556666",
    "555566667777",
    "666677778888",
    "777788889999",
];

const REGIONS: [&str; 5] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
];

const ROLES: [&str; 6] = [
    "OrganizationAccountAccessRole",
    "DeployRole",
    "ReadOnlyAuditor",
    "lambda-exec",
    "eks-node-role",
    "DataPipelineRole",
];

const USERS: [&str; 6] = ["alice", "bob", "carol", "dave", "ci-bot", "backup"];

const USER_AGENTS: [&str; 5] = [
    "aws-cli/2.15.30 Python/3.11.8 Linux/5.10.210-201.852.amzn2.x86_64 exe/x86_64.amzn.2 prompt/off command/ec2.describe-instances",
    "Boto3/1.34.54 md/Botocore#1.34.54 ua/2.0 os/linux#5.10.0 md/arch#x86_64 lang/python#3.11.6 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.54",
    "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.21.6 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.149.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "terraform-provider-aws/5.40.0 (+https://registry.terraform.io) aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.0",
];

/// (eventSource, eventName, weight, readOnly).
const CALLS: [(&str, &str, u32, bool); 24] = [
    ("ec2.amazonaws.com", "DescribeInstances", 160, true),
    ("ec2.amazonaws.com", "DescribeSecurityGroups", 60, true),
    ("ec2.amazonaws.com", "DescribeVolumes", 40, true),
    ("ec2.amazonaws.com", "DescribeSubnets", 30, true),
    ("s3.amazonaws.com", "GetBucketAcl", 40, true),
    ("s3.amazonaws.com", "ListBuckets", 30, true),
    ("s3.amazonaws.com", "GetBucketLocation", 30, true),
    ("s3.amazonaws.com", "PutObject", 20, false),
    ("s3.amazonaws.com", "HeadBucket", 10, true),
    ("iam.amazonaws.com", "GetRole", 40, true),
    ("iam.amazonaws.com", "ListRoles", 25, true),
    ("iam.amazonaws.com", "ListPolicies", 20, true),
    ("iam.amazonaws.com", "GetUser", 15, true),
    ("sts.amazonaws.com", "AssumeRole", 80, true),
    ("sts.amazonaws.com", "GetCallerIdentity", 40, true),
    ("kms.amazonaws.com", "Decrypt", 60, true),
    ("kms.amazonaws.com", "GenerateDataKey", 30, true),
    ("lambda.amazonaws.com", "ListFunctions20150331", 20, true),
    ("logs.amazonaws.com", "DescribeLogGroups", 20, true),
    ("monitoring.amazonaws.com", "GetMetricData", 30, true),
    ("secretsmanager.amazonaws.com", "GetSecretValue", 20, true),
    ("signin.amazonaws.com", "ConsoleLogin", 8, false),
    ("ssm.amazonaws.com", "GetParameters", 25, true),
    ("cloudtrail.amazonaws.com", "LookupEvents", 6, true),
];

/// Rare CIS-relevant changes: (eventSource, eventName).
const CHANGES: [(&str, &str); 30] = [
    ("iam.amazonaws.com", "PutUserPolicy"),
    ("iam.amazonaws.com", "AttachRolePolicy"),
    ("iam.amazonaws.com", "CreatePolicy"),
    ("iam.amazonaws.com", "DeleteRolePolicy"),
    ("iam.amazonaws.com", "CreatePolicyVersion"),
    ("cloudtrail.amazonaws.com", "StopLogging"),
    ("cloudtrail.amazonaws.com", "UpdateTrail"),
    ("kms.amazonaws.com", "DisableKey"),
    ("kms.amazonaws.com", "ScheduleKeyDeletion"),
    ("s3.amazonaws.com", "PutBucketPolicy"),
    ("s3.amazonaws.com", "PutBucketAcl"),
    ("s3.amazonaws.com", "DeleteBucketPolicy"),
    ("config.amazonaws.com", "StopConfigurationRecorder"),
    ("config.amazonaws.com", "PutDeliveryChannel"),
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress"),
    ("ec2.amazonaws.com", "CreateSecurityGroup"),
    ("ec2.amazonaws.com", "RevokeSecurityGroupEgress"),
    ("ec2.amazonaws.com", "CreateNetworkAclEntry"),
    ("ec2.amazonaws.com", "ReplaceNetworkAclAssociation"),
    ("ec2.amazonaws.com", "CreateCustomerGateway"),
    ("ec2.amazonaws.com", "AttachInternetGateway"),
    ("ec2.amazonaws.com", "CreateRoute"),
    ("ec2.amazonaws.com", "ReplaceRouteTableAssociation"),
    ("ec2.amazonaws.com", "CreateVpc"),
    ("ec2.amazonaws.com", "ModifyVpcAttribute"),
    ("ec2.amazonaws.com", "CreateVpcPeeringConnection"),
    ("organizations.amazonaws.com", "LeaveOrganization"),
    ("ec2.amazonaws.com", "RunInstances"),
    ("ec2.amazonaws.com", "TerminateInstances"),
    ("ec2.amazonaws.com", "StopInstances"),
];

/// Who made a call.
enum Principal {
    Role { role: &'static str, session: String },
    User(&'static str),
    Root,
}

/// Writes `options.count` CloudTrail records, one per line.
pub fn generate(options: &GenOptions, out: &mut dyn Write) -> io::Result<()> {
    let mut rng = Rng::new(options.seed);
    // About 1,000 events per second of event time.
    let mut clock = Clock::new(options.start_ms, 2);
    let weights: Vec<u32> = CALLS.iter().map(|c| c.2).collect();
    let mut line = String::with_capacity(2048);
    let mut written = 0u64;
    let mut writer = io::BufWriter::with_capacity(1 << 20, out);
    while written < options.count {
        // A burst of console sign-in failures from one address.
        if rng.chance(1.0 / 4000.0) {
            let burst = rng.range(5, 12).min(options.count - written);
            let ip = public_ip(&mut rng);
            let account = *rng.pick(&ACCOUNTS);
            let user = *rng.pick(&USERS);
            for _ in 0..burst {
                let time = clock.tick(&mut rng).max(clock.now() - 5_000);
                line.clear();
                console_login(&mut rng, &mut line, time, account, user, &ip, false, false);
                writer.write_all(line.as_bytes())?;
                writer.write_all(b"\n")?;
            }
            written += burst;
            continue;
        }
        let time = clock.tick(&mut rng);
        let account = *rng.pick(&ACCOUNTS);
        line.clear();
        if rng.chance(0.0005) {
            // Root usage.
            let ip = public_ip(&mut rng);
            console_login(&mut rng, &mut line, time, account, "root", &ip, true, true);
        } else if rng.chance(0.005) {
            let (source, name) = *rng.pick(&CHANGES);
            let principal = principal(&mut rng);
            api_call(
                &mut rng, &mut line, time, account, source, name, false, &principal,
            );
        } else {
            let (source, name, _, read_only) = CALLS[rng.weighted(&weights)];
            if name == "ConsoleLogin" {
                let ip = public_ip(&mut rng);
                let user = *rng.pick(&USERS);
                let failed = rng.chance(0.05);
                console_login(
                    &mut rng, &mut line, time, account, user, &ip, !failed, false,
                );
            } else {
                let principal = principal(&mut rng);
                api_call(
                    &mut rng, &mut line, time, account, source, name, read_only, &principal,
                );
            }
        }
        writer.write_all(line.as_bytes())?;
        writer.write_all(b"\n")?;
        written += 1;
    }
    writer.flush()
}

fn principal(rng: &mut Rng) -> Principal {
    if rng.chance(0.8) {
        let role = *rng.pick(&ROLES);
        let mut session = String::new();
        match rng.below(3) {
            0 => rng.push_chars(&mut session, b"0123456789", 19),
            1 => session.push_str(rng.pick::<&str>(&USERS)),
            _ => {
                session.push_str("botocore-session-");
                rng.push_chars(&mut session, b"0123456789", 10);
            }
        }
        Principal::Role { role, session }
    } else {
        Principal::User(rng.pick::<&str>(&USERS))
    }
}

fn push_id(rng: &mut Rng, out: &mut String, prefix: &str, len: usize) {
    out.push_str(prefix);
    rng.push_chars(out, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", len);
}

fn user_identity(rng: &mut Rng, out: &mut String, account: &str, principal: &Principal, time: i64) {
    match principal {
        Principal::Role { role, session } => {
            let mut role_id = String::new();
            push_id(rng, &mut role_id, "AROA", 17);
            out.push_str("{\"type\":\"AssumedRole\",\"principalId\":\"");
            let _ = write!(out, "{role_id}:{session}\",\"arn\":\"arn:aws:sts::{account}:assumed-role/{role}/{session}\",\"accountId\":\"{account}\",\"accessKeyId\":\"");
            push_id(rng, out, "ASIA", 16);
            let _ = write!(
                out,
                "\",\"sessionContext\":{{\"sessionIssuer\":{{\"type\":\"Role\",\"principalId\":\"{role_id}\",\"arn\":\"arn:aws:iam::{account}:role/{role}\",\"accountId\":\"{account}\",\"userName\":\"{role}\"}},\"webIdFederationData\":{{}},\"attributes\":{{\"creationDate\":\"{}\",\"mfaAuthenticated\":\"false\"}}}}}}",
                rfc3339(time - rng.below(3_600_000) as i64)
            );
        }
        Principal::User(user) => {
            out.push_str("{\"type\":\"IAMUser\",\"principalId\":\"");
            push_id(rng, out, "AIDA", 17);
            let _ = write!(
                out,
                "\",\"arn\":\"arn:aws:iam::{account}:user/{user}\",\"accountId\":\"{account}\",\"accessKeyId\":\""
            );
            push_id(rng, out, "AKIA", 16);
            let _ = write!(out, "\",\"userName\":\"{user}\"}}");
        }
        Principal::Root => {
            let _ = write!(
                out,
                "{{\"type\":\"Root\",\"principalId\":\"{account}\",\"arn\":\"arn:aws:iam::{account}:root\",\"accountId\":\"{account}\",\"accessKeyId\":\"\"}}"
            );
        }
    }
}

fn request_parameters(rng: &mut Rng, out: &mut String, name: &str, region: &str) {
    match name {
        "DescribeInstances" => {
            out.push_str("{\"instancesSet\":{\"items\":[{\"instanceId\":\"i-0");
            rng.push_chars(out, b"0123456789abcdef", 16);
            out.push_str("\"}]},\"filterSet\":{\"items\":[{\"name\":\"instance-state-name\",\"valueSet\":{\"items\":[{\"value\":\"running\"}]}}]}}");
        }
        "GetSecretValue" => {
            let _ = write!(
                out,
                "{{\"secretId\":\"arn:aws:secretsmanager:{region}:123456789012:secret:prod/db/{}-AbCdEf\"}}",
                rng.pick(&["postgres", "mysql", "redis", "api-key"])
            );
        }
        "AssumeRole" => {
            let _ = write!(
                out,
                "{{\"roleArn\":\"arn:aws:iam::123456789012:role/{}\",\"roleSessionName\":\"session-{}\",\"durationSeconds\":3600}}",
                rng.pick(&ROLES),
                rng.below(100_000)
            );
        }
        "Decrypt" | "GenerateDataKey" | "DisableKey" | "ScheduleKeyDeletion" => {
            out.push_str("{\"encryptionAlgorithm\":\"SYMMETRIC_DEFAULT\",\"keyId\":\"arn:aws:kms:");
            let _ = write!(out, "{region}:123456789012:key/");
            rng.push_uuid(out);
            out.push_str("\"}");
        }
        "PutObject" | "GetBucketAcl" | "GetBucketLocation" | "HeadBucket" | "PutBucketPolicy"
        | "PutBucketAcl" | "DeleteBucketPolicy" => {
            let _ = write!(
                out,
                "{{\"bucketName\":\"{}-{}\",\"Host\":\"s3.{region}.amazonaws.com\",\"key\":\"data/{}/part-{:05}.parquet\"}}",
                rng.pick(&["logs", "artifacts", "datalake", "backups"]),
                rng.below(50),
                rng.below(365),
                rng.below(10_000)
            );
        }
        _ if name.starts_with("Describe") || name.starts_with("List") => {
            let _ = write!(
                out,
                "{{\"maxResults\":{},\"filters\":[{{\"name\":\"tag:team\",\"values\":[\"{}\"]}}]}}",
                rng.pick(&[50, 100, 1000]),
                rng.pick(&["platform", "data", "security"])
            );
        }
        _ => {
            let _ = write!(
                out,
                "{{\"resourceName\":\"res-{}\",\"dryRun\":false}}",
                rng.below(1_000_000)
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn api_call(
    rng: &mut Rng,
    out: &mut String,
    time: i64,
    account: &str,
    source: &str,
    name: &str,
    read_only: bool,
    principal: &Principal,
) {
    let region = *rng.pick(&REGIONS);
    let internal = rng.chance(0.4);
    let ip = if internal {
        private_ip(rng, 400)
    } else {
        public_ip(rng)
    };
    out.push_str("{\"eventVersion\":\"1.09\",\"userIdentity\":");
    user_identity(rng, out, account, principal, time);
    let _ = write!(
        out,
        ",\"eventTime\":\"{}\",\"eventSource\":\"{source}\",\"eventName\":\"{name}\",\"awsRegion\":\"{region}\",\"sourceIPAddress\":\"{ip}\",\"userAgent\":\"{}\"",
        rfc3339(time),
        rng.pick(&USER_AGENTS)
    );
    let error = rng.chance(0.03);
    if error {
        if source == "ec2.amazonaws.com" {
            out.push_str(",\"errorCode\":\"Client.UnauthorizedOperation\",\"errorMessage\":\"You are not authorized to perform this operation. Encoded authorization failure message: ");
            rng.push_chars(
                out,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                64,
            );
            out.push('"');
        } else {
            let _ = write!(
                out,
                ",\"errorCode\":\"AccessDenied\",\"errorMessage\":\"User is not authorized to perform: {}:{name} because no identity-based policy allows the action\"",
                source.split('.').next().unwrap_or(source)
            );
        }
    }
    out.push_str(",\"requestParameters\":");
    request_parameters(rng, out, name, region);
    if error || read_only {
        out.push_str(",\"responseElements\":null");
    } else {
        out.push_str(",\"responseElements\":{\"requestId\":\"");
        rng.push_uuid(out);
        out.push_str("\",\"_return\":true}");
    }
    out.push_str(",\"requestID\":\"");
    rng.push_uuid(out);
    out.push_str("\",\"eventID\":\"");
    rng.push_uuid(out);
    let _ = write!(
        out,
        "\",\"readOnly\":{read_only},\"eventType\":\"AwsApiCall\",\"managementEvent\":true,\"recipientAccountId\":\"{account}\",\"eventCategory\":\"Management\",\"tlsDetails\":{{\"tlsVersion\":\"TLSv1.3\",\"cipherSuite\":\"TLS_AES_128_GCM_SHA256\",\"clientProvidedHostHeader\":\"{}.{region}.amazonaws.com\"}}",
        source.split('.').next().unwrap_or(source)
    );
    if internal && rng.chance(0.3) {
        out.push_str(",\"vpcEndpointId\":\"vpce-0");
        rng.push_chars(out, b"0123456789abcdef", 16);
        out.push('"');
    }
    out.push('}');
}

#[allow(clippy::too_many_arguments)]
fn console_login(
    rng: &mut Rng,
    out: &mut String,
    time: i64,
    account: &str,
    user: &str,
    ip: &str,
    success: bool,
    root: bool,
) {
    let principal = if root {
        Principal::Root
    } else {
        Principal::User(
            USERS
                .iter()
                .find(|u| **u == user)
                .copied()
                .unwrap_or("alice"),
        )
    };
    out.push_str("{\"eventVersion\":\"1.09\",\"userIdentity\":");
    user_identity(rng, out, account, &principal, time);
    let _ = write!(
        out,
        ",\"eventTime\":\"{}\",\"eventSource\":\"signin.amazonaws.com\",\"eventName\":\"ConsoleLogin\",\"awsRegion\":\"us-east-1\",\"sourceIPAddress\":\"{ip}\",\"userAgent\":\"{}\"",
        rfc3339(time),
        USER_AGENTS[3]
    );
    if !success {
        out.push_str(",\"errorMessage\":\"Failed authentication\"");
    }
    let mfa = if root || rng.chance(0.9) { "Yes" } else { "No" };
    let _ = write!(
        out,
        ",\"requestParameters\":null,\"responseElements\":{{\"ConsoleLogin\":\"{}\"}},\"additionalEventData\":{{\"LoginTo\":\"https://console.aws.amazon.com/console/home?hashArgs=%23&isauthcode=true&state=hashArgsFromTB_us-east-1_{:016x}\",\"MobileVersion\":\"No\",\"MFAIdentifier\":\"arn:aws:iam::{account}:mfa/{user}\",\"MFAUsed\":\"{mfa}\"}},\"eventID\":\"",
        if success { "Success" } else { "Failure" },
        rng.next_u64()
    );
    rng.push_uuid(out);
    let _ = write!(
        out,
        "\",\"readOnly\":false,\"eventType\":\"AwsConsoleSignIn\",\"managementEvent\":true,\"recipientAccountId\":\"{account}\",\"eventCategory\":\"Management\",\"tlsDetails\":{{\"tlsVersion\":\"TLSv1.3\",\"cipherSuite\":\"TLS_AES_128_GCM_SHA256\",\"clientProvidedHostHeader\":\"signin.aws.amazon.com\"}}}}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{generate_records, GenKind};

    #[test]
    fn records_are_valid_json_of_realistic_size() {
        let records = generate_records(
            GenKind::CloudTrail,
            &GenOptions {
                count: 5000,
                ..GenOptions::default()
            },
        );
        assert_eq!(records.len(), 5000);
        let mut bytes = 0;
        let mut errors = 0;
        let mut failures = 0;
        for record in &records {
            let value: serde_json::Value = serde_json::from_slice(record).unwrap();
            bytes += record.len();
            assert!(value["eventTime"].is_string());
            assert!(value["userIdentity"]["type"].is_string());
            errors += usize::from(value.get("errorCode").is_some());
            failures += usize::from(value["errorMessage"] == "Failed authentication");
        }
        let mean = bytes / records.len();
        assert!((900..=1600).contains(&mean), "mean record size {mean}");
        assert!(errors > 50 && errors < 250, "errors {errors}");
        assert!(failures > 0);
    }
}
