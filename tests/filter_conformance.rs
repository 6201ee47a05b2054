//! Conformance table for the CloudWatch Logs filter-pattern language.
//!
//! Every case is (name, pattern, input, expected). Cases come from the AWS
//! documentation page "Filter pattern syntax for metric filters,
//! subscription filters, filter log events, and Live Tail" (`aws_doc_*`),
//! from the CIS AWS Foundations Benchmark monitoring controls (`cis_*`), and
//! from edge cases whose behaviour is argued in `trailwatch::filter`'s
//! module docs. Where AWS behaviour is not documented the case name says
//! `aws_unknown`.

use serde_json::{json, Value};
use trailwatch::event::EventKind;
use trailwatch::fields::FieldPlan;
use trailwatch::filter::testing::{event_from_json, event_from_text};
use trailwatch::filter::Filter;

enum Input {
    Text(&'static str),
    Json(Value),
}

struct Case {
    name: &'static str,
    pattern: &'static str,
    input: Input,
    expected: bool,
}

fn text(name: &'static str, pattern: &'static str, line: &'static str, expected: bool) -> Case {
    Case {
        name,
        pattern,
        input: Input::Text(line),
        expected,
    }
}

fn doc(name: &'static str, pattern: &'static str, value: Value, expected: bool) -> Case {
    Case {
        name,
        pattern,
        input: Input::Json(value),
        expected,
    }
}

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in cases {
        let mut filter = match Filter::parse(case.pattern) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!(
                    "{}: {:?} does not parse: {e}",
                    case.name, case.pattern
                ));
                continue;
            }
        };
        let got = match &case.input {
            Input::Text(line) => filter.matches(&event_from_text(line, EventKind::HostLog)),
            Input::Json(value) => {
                let mut plan = FieldPlan::new(EventKind::CloudTrail);
                filter.bind(&mut plan);
                filter.matches(&event_from_json(value, &plan, EventKind::CloudTrail))
            }
        };
        if got != case.expected {
            failures.push(format!(
                "{}: {:?} expected {} got {}",
                case.name, case.pattern, case.expected, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "conformance failures:\n{}",
        failures.join("\n")
    );
}

const E400: &str = "[ERROR 400] BAD REQUEST";
const E401: &str = "[ERROR 401] UNAUTHORIZED REQUEST";
const E419: &str = "[ERROR 419] MISSING ARGUMENTS";
const E420: &str = "[ERROR 420] INVALID ARGUMENTS";
const E500: &str = "[ERROR 500] INTERNAL SERVER ERROR";
const OK200: &str = "[SUCCESS 200] AUTHORIZED REQUEST";
const INFO: &str = "[INFO] all good";

#[test]
fn unstructured_terms_and_phrases() {
    run(vec![
        text("aws_doc_single_term_400", "ERROR", E400, true),
        text("aws_doc_single_term_419", "ERROR", E419, true),
        text("aws_doc_single_term_no_match", "ERROR", INFO, false),
        text(
            "aws_doc_multiple_terms_all_419",
            "ERROR ARGUMENTS",
            E419,
            true,
        ),
        text(
            "aws_doc_multiple_terms_all_420",
            "ERROR ARGUMENTS",
            E420,
            true,
        ),
        text(
            "aws_doc_multiple_terms_all_missing_one",
            "ERROR ARGUMENTS",
            E400,
            false,
        ),
        text("aws_doc_or_terms_first", "?ERROR ?ARGUMENTS", E400, true),
        text("aws_doc_or_terms_none", "?ERROR ?ARGUMENTS", OK200, false),
        text(
            "aws_doc_or_terms_warn",
            "?ERROR ?WARN",
            "WARN low disk",
            true,
        ),
        text(
            "aws_doc_exact_phrase",
            "\"INTERNAL SERVER ERROR\"",
            E500,
            true,
        ),
        text(
            "aws_doc_exact_phrase_no_match",
            "\"INTERNAL SERVER ERROR\"",
            E400,
            false,
        ),
        text(
            "aws_doc_phrase_words_out_of_order",
            "\"SERVER INTERNAL\"",
            E500,
            false,
        ),
        text("aws_doc_exclusion_keeps", "ERROR -ARGUMENTS", E400, true),
        text(
            "aws_doc_exclusion_keeps_401",
            "ERROR -ARGUMENTS",
            E401,
            true,
        ),
        text("aws_doc_exclusion_drops", "ERROR -ARGUMENTS", E419, false),
        text(
            "aws_doc_exclusion_exiting",
            "ERROR -Exiting",
            "ERROR Exiting now",
            false,
        ),
        text(
            "aws_doc_exclusion_phrase",
            "ERROR -\"MISSING ARGUMENTS\"",
            E419,
            false,
        ),
        text(
            "aws_doc_exclusion_phrase_keeps",
            "ERROR -\"MISSING ARGUMENTS\"",
            E420,
            true,
        ),
        text("aws_doc_space_matches_everything", "\" \"", INFO, true),
        text("aws_doc_empty_matches_everything", "", INFO, true),
        text("aws_doc_case_sensitive", "error", E400, false),
        text(
            "aws_doc_term_with_symbols_quoted",
            "\"ERROR 400\"",
            E400,
            true,
        ),
        // Terms are words: `%regex%` is how the docs reach UNAUTHORIZED.
        text(
            "aws_inferred_term_is_a_word_not_substring",
            "AUTHORIZED",
            E401,
            false,
        ),
        text(
            "aws_inferred_term_is_a_word_match",
            "AUTHORIZED",
            OK200,
            true,
        ),
        text(
            "aws_unknown_term_and_optional_mix",
            "REQUEST ?400 ?401",
            E401,
            true,
        ),
        text(
            "aws_unknown_term_and_optional_mix_none",
            "REQUEST ?400 ?401",
            OK200,
            false,
        ),
    ]);
}

#[test]
fn regex_patterns() {
    run(vec![
        text("aws_doc_regex_authorized_1", "%AUTHORIZED%", E401, true),
        text("aws_doc_regex_authorized_2", "%AUTHORIZED%", OK200, true),
        text("aws_doc_regex_no_match", "%AUTHORIZED%", E400, false),
        text(
            "aws_doc_regex_ip",
            "%\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}%",
            "from 10.0.0.1 ok",
            true,
        ),
        text(
            "aws_doc_regex_alternation",
            "%[Ee]rror|[Ff]ail%",
            "disk fail",
            true,
        ),
        text("aws_doc_regex_optional", "%colou?r%", "color", true),
        text("aws_doc_regex_anchor_start", "%^[hc]at%", "hat trick", true),
        text("aws_doc_regex_anchor_start_no", "%^[hc]at%", "a hat", false),
        text("aws_doc_regex_anchor_end", "%[hc]at$%", "a cat", true),
        text("aws_doc_regex_counted", "%a{3,5}%", "baaab", true),
        text("aws_doc_regex_counted_no", "%a{3,5}%", "baab", false),
        text(
            "aws_doc_regex_escape_dot",
            "%10\\.10\\.0\\.1%",
            "ip 10.10.0.1",
            true,
        ),
        text(
            "aws_doc_regex_escape_dot_no",
            "%10\\.10\\.0\\.1%",
            "ip 10x10.0.1",
            false,
        ),
        text(
            "regex_in_space_delimited",
            "[w1=%ERR.R%, w2]",
            "ERROR 400",
            true,
        ),
        doc(
            "regex_in_json",
            "{ $.eventType = %Update% }",
            json!({"eventType": "UpdateTrail"}),
            true,
        ),
        doc(
            "regex_in_json_no",
            "{ $.eventType = %^Trail% }",
            json!({"eventType": "UpdateTrail"}),
            false,
        ),
        doc(
            "regex_in_json_ab_plus_c",
            "{ $.a = %ab+c% }",
            json!({"a": "xabbbcx"}),
            true,
        ),
    ]);
}

fn doc_event() -> Value {
    json!({
        "eventType": "UpdateTrail",
        "sourceIPAddress": "111.111.111.111",
        "arrayKey": ["value", "another value"],
        "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
        "SomeObject": null,
        "ThisFlag": true,
        "ThatFlag": false,
        "latency": 200,
        "status": 404,
        "numericText": "1500"
    })
}

fn compound_event() -> Value {
    json!({
        "user": {"id": 1, "email": "John.Stiles@example.com"},
        "users": [
            {"id": 2, "email": "John.Doe@example.com"},
            {"id": 3, "email": "Jane.Doe@example.com"}
        ],
        "actions": ["GET", "PUT", "DELETE"],
        "coordinates": [[0, 1], [2, 3]]
    })
}

#[test]
fn json_patterns() {
    run(vec![
        doc("aws_doc_json_string", "{ $.eventType = \"UpdateTrail\" }", doc_event(), true),
        doc("aws_doc_json_string_no", "{ $.eventType = \"CreateTrail\" }", doc_event(), false),
        doc("aws_doc_json_not_equal_wildcard", "{ $.sourceIPAddress != 123.123.* }", doc_event(), true),
        doc("aws_doc_json_equal_wildcard", "{ $.sourceIPAddress = 111.111.* }", doc_event(), true),
        doc("aws_doc_json_array_index", "{ $.arrayKey[0] = \"value\" }", doc_event(), true),
        doc("aws_doc_json_array_index_second", "{ $.arrayKey[1] = \"another value\" }", doc_event(), true),
        doc("aws_doc_json_object_list", "{ $.objectList[1].id = 2 }", doc_event(), true),
        doc("aws_doc_json_object_list_no", "{ $.objectList[0].id = 2 }", doc_event(), false),
        doc("aws_doc_json_is_null", "{ $.SomeObject IS NULL }", doc_event(), true),
        doc("aws_doc_json_not_exists", "{ $.SomeOtherObject NOT EXISTS }", doc_event(), true),
        doc("aws_doc_json_not_exists_present", "{ $.eventType NOT EXISTS }", doc_event(), false),
        doc("aws_doc_json_is_true", "{ $.ThisFlag IS TRUE }", doc_event(), true),
        doc("aws_doc_json_is_false", "{ $.ThatFlag IS FALSE }", doc_event(), true),
        doc("aws_doc_json_is_true_on_false", "{ $.ThatFlag IS TRUE }", doc_event(), false),
        doc("aws_doc_json_numeric_gt", "{ $.latency > 100 }", doc_event(), true),
        doc("aws_doc_json_numeric_ge", "{ $.latency >= 200 }", doc_event(), true),
        doc("aws_doc_json_numeric_lt_no", "{ $.latency < 200 }", doc_event(), false),
        doc("aws_doc_json_numeric_le", "{ $.latency <= 200 }", doc_event(), true),
        doc("aws_doc_json_numeric_eq", "{ $.latency = 200 }", doc_event(), true),
        doc("aws_doc_json_numeric_ne", "{ $.latency != 100 }", doc_event(), true),
        doc("aws_doc_json_numeric_float", "{ $.latency = 200.0 }", doc_event(), true),
        doc(
            "aws_doc_compound_and",
            "{ ($.user.id = 1) && ($.users[0].email = \"John.Doe@example.com\") }",
            compound_event(),
            true,
        ),
        doc(
            "aws_doc_compound_or_no_match",
            "{ ($.user.id = 2 && $.users[0].email = \"nonmatch\") || $.actions[2] = \"GET\" }",
            compound_event(),
            false,
        ),
        doc(
            "aws_doc_compound_and_binds_tighter_than_or",
            "{ $.user.email = \"John.Stiles@example.com\" || $.coordinates[0][1] = \"nonmatch\" && $.actions[2] = \"nonmatch\" }",
            compound_event(),
            true,
        ),
        doc(
            "aws_doc_compound_parentheses_override",
            "{ ($.user.email = \"John.Stiles@example.com\" || $.coordinates[0][1] = \"nonmatch\") && $.actions[2] = \"nonmatch\" }",
            compound_event(),
            false,
        ),
        doc("aws_doc_nested_array_index", "{ $.coordinates[1][0] = 2 }", compound_event(), true),
        // Edge cases.
        doc("selector_on_object_matches_nothing", "{ $.user = \"x\" }", compound_event(), false),
        doc("selector_on_object_wildcard_matches_nothing", "{ $.user = * }", compound_event(), false),
        doc("aws_unknown_selector_on_object_not_equal_matches_nothing", "{ $.user != \"x\" }", compound_event(), false),
        doc("selector_on_array_matches_nothing", "{ $.actions = \"GET\" }", compound_event(), false),
        doc("selector_on_object_exists", "{ $.user EXISTS }", compound_event(), true),
        doc("aws_unknown_not_equal_on_missing_field_matches", "{ $.nothing != \"x\" }", doc_event(), true),
        doc("aws_unknown_not_equal_on_null_matches", "{ $.SomeObject != \"x\" }", doc_event(), true),
        doc("numeric_comparison_on_string_field_no_match", "{ $.numericText > 1000 }", doc_event(), false),
        doc("numeric_comparison_on_missing_field_no_match", "{ $.nothing > 1 }", doc_event(), false),
        doc("aws_unknown_unquoted_number_equals_numeric_string", "{ $.numericText = 1500 }", doc_event(), true),
        doc("quoted_string_equals_number_text", "{ $.status = \"404\" }", doc_event(), true),
        doc("wildcard_inside_number", "{ $.status = 4* }", doc_event(), true),
        doc("wildcard_inside_number_no", "{ $.status = 5* }", doc_event(), false),
        doc("wildcard_inside_number_not_equal", "{ $.status != 4* }", doc_event(), false),
        doc("is_null_on_explicit_null", "{ $.SomeObject IS NULL }", doc_event(), true),
        doc("is_null_on_missing_is_false", "{ $.nothing IS NULL }", doc_event(), false),
        doc("not_exists_on_null_is_false", "{ $.SomeObject NOT EXISTS }", doc_event(), false),
        doc("unquoted_value_with_dots", "{ $.eventSource = kms.amazonaws.com }", json!({"eventSource": "kms.amazonaws.com"}), true),
        doc("unquoted_value_with_dots_no", "{ $.eventSource = kms.amazonaws.com }", json!({"eventSource": "s3.amazonaws.com"}), false),
        doc("unquoted_value_no_spaces", "{$.eventName=ConsoleLogin}", json!({"eventName": "ConsoleLogin"}), true),
        doc("wildcard_prefix", "{ $.e = \"AccessDenied*\" }", json!({"e": "AccessDeniedException"}), true),
        doc("wildcard_suffix", "{ $.e = \"*UnauthorizedOperation\" }", json!({"e": "Client.UnauthorizedOperation"}), true),
        doc("wildcard_contains", "{ $.e = \"*mid*\" }", json!({"e": "in the middle"}), true),
        doc("wildcard_contains_no", "{ $.e = \"*mid*\" }", json!({"e": "nothing"}), false),
        doc("case_sensitive_values", "{ $.e = \"abc\" }", json!({"e": "ABC"}), false),
        doc("bracket_quoted_key", "{ $.['cluster.name'] = c1 }", json!({"cluster.name": "c1"}), true),
        doc("envelope_field_selector", "{ $.@log_group = x }", json!({"@log_group": "x"}), true),
    ]);
}

const APACHE: &str =
    r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534"#;
const FLOW: &str = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 REJECT OK";
const FLOW_PATTERN: &str = "[version, account_id, interface_id, srcaddr, dstaddr, srcport, dstport=\"22\", protocol=\"6\", packets, bytes, start, end, action=\"REJECT\", log_status]";

#[test]
fn space_delimited_patterns() {
    run(vec![
        text("aws_doc_delimited_first_word", "[w1=ERROR, w2]", "ERROR 400", true),
        text("aws_doc_delimited_first_word_no", "[w1=ERROR, w2]", "INFO 400", false),
        text("aws_doc_delimited_field_count_must_match", "[w1=ERROR, w2]", "ERROR 400 extra", false),
        text(
            "aws_doc_delimited_apache",
            "[ip, user, username, timestamp, request = \"*html*\", status_code = 4*, bytes]",
            APACHE,
            true,
        ),
        text(
            "aws_doc_delimited_apache_not_equal",
            "[ip, user, username, timestamp, request = \"*html*\", status_code != 4*, bytes]",
            APACHE,
            false,
        ),
        text(
            "aws_doc_delimited_or_in_field",
            "[ip, user, username, timestamp, request, status_code = 404 || status_code = 410, bytes]",
            APACHE,
            true,
        ),
        text(
            "aws_doc_delimited_and_range",
            "[ip, user, username, timestamp, request, status_code, bytes >= 1000 && bytes <= 2000]",
            APACHE,
            true,
        ),
        text(
            "aws_doc_delimited_and_range_no",
            "[ip, user, username, timestamp, request, status_code, bytes > 1000 && bytes < 1500]",
            APACHE,
            false,
        ),
        text("aws_doc_delimited_ellipsis_leading", "[..., status_code = 404, bytes]", APACHE, true),
        text("aws_doc_delimited_ellipsis_middle", "[ip, user, ..., status_code, bytes]", APACHE, true),
        text("aws_doc_delimited_ellipsis_trailing", "[ip = 127.0.0.1, ...]", APACHE, true),
        text("delimited_two_ellipses", "[ip, ..., username = frank, ..., bytes]", APACHE, true),
        text("delimited_two_ellipses_no", "[ip, ..., username = bob, ..., bytes]", APACHE, false),
        text("delimited_brackets_are_one_field", "[a, b, c, ts = \"10/Oct/2000*\", ...]", APACHE, true),
        text("delimited_numeric_compare_on_text_no", "[a, ..., ts > 5, req, code, bytes]", APACHE, false),
        text("aws_doc_vpc_flow_ssh_reject", FLOW_PATTERN, FLOW, true),
        text("aws_doc_vpc_flow_ssh_accept_no", FLOW_PATTERN, FLOW_ACCEPT, false),
        text("delimited_wildcard_inside_number", "[..., status_code = 4*, bytes]", APACHE, true),
    ]);
}

const FLOW_ACCEPT: &str = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";

#[test]
fn named_field_extraction_for_metric_values() {
    let filter =
        Filter::parse("[ip, user, username, timestamp, request, status_code = 4*, bytes]").unwrap();
    let event = event_from_text(APACHE, EventKind::HostLog);
    assert_eq!(
        filter.named_field(&event, "$bytes").as_deref(),
        Some("1534")
    );
    assert_eq!(
        filter.named_field(&event, "request").as_deref(),
        Some("GET /index.html HTTP/1.0")
    );
    let other = event_from_text("1 2 3", EventKind::HostLog);
    assert_eq!(filter.named_field(&other, "bytes"), None);
}

fn cloudtrail(name: &str, source: &str, extra: Value) -> Value {
    let mut event = json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice"},
        "eventTime": "2024-01-01T00:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "eventType": "AwsApiCall",
        "recipientAccountId": "123456789012"
    });
    if let (Some(base), Value::Object(extra)) = (event.as_object_mut(), extra) {
        base.extend(extra);
    }
    event
}

const CIS_4_1: &str = r#"{ (($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*")) && ($.sourceIPAddress != "delivery.logs.amazonaws.com") && ($.eventName != "HeadBucket") }"#;
const CIS_4_2: &str =
    r#"{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") }"#;
const CIS_4_2_V2: &str = r#"{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") && ($.userIdentity.type = "IAMUser") && ($.responseElements.ConsoleLogin = "Success") }"#;
const CIS_4_3: &str = r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#;
const CIS_4_6: &str =
    r#"{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }"#;
const CIS_4_7: &str = r#"{($.eventSource = kms.amazonaws.com) && (($.eventName=DisableKey)||($.eventName=ScheduleKeyDeletion))}"#;
const CIS_4_10: &str = r#"{ ($.eventName = AuthorizeSecurityGroupIngress) || ($.eventName = AuthorizeSecurityGroupEgress) || ($.eventName = RevokeSecurityGroupIngress) || ($.eventName = RevokeSecurityGroupEgress) || ($.eventName = CreateSecurityGroup) || ($.eventName = DeleteSecurityGroup) }"#;
const CIS_4_15: &str = r#"{ ($.eventSource = organizations.amazonaws.com) && (($.eventName = "AcceptHandshake") || ($.eventName = "AttachPolicy") || ($.eventName = "CreateAccount") || ($.eventName = "CreateOrganizationalUnit") || ($.eventName = "CreatePolicy") || ($.eventName = "DeclineHandshake") || ($.eventName = "DeleteOrganization") || ($.eventName = "DeleteOrganizationalUnit") || ($.eventName = "DeletePolicy") || ($.eventName = "DetachPolicy") || ($.eventName = "DisablePolicyType") || ($.eventName = "EnablePolicyType") || ($.eventName = "InviteAccountToOrganization") || ($.eventName = "LeaveOrganization") || ($.eventName = "MoveAccount") || ($.eventName = "RemoveAccountFromOrganization") || ($.eventName = "UpdatePolicy") || ($.eventName = "UpdateOrganizationalUnit")) }"#;

#[test]
fn cis_benchmark_patterns() {
    let root = json!({"userIdentity": {"type": "Root", "arn": "arn:aws:iam::123456789012:root"}});
    run(vec![
        doc(
            "cis_4_1_unauthorized_api_call",
            CIS_4_1,
            cloudtrail(
                "RunInstances",
                "ec2.amazonaws.com",
                json!({"errorCode": "Client.UnauthorizedOperation"}),
            ),
            true,
        ),
        doc(
            "cis_4_1_access_denied",
            CIS_4_1,
            cloudtrail(
                "GetObject",
                "s3.amazonaws.com",
                json!({"errorCode": "AccessDenied"}),
            ),
            true,
        ),
        doc(
            "cis_4_1_delivery_logs_excluded",
            CIS_4_1,
            cloudtrail(
                "GetObject",
                "s3.amazonaws.com",
                json!({"errorCode": "AccessDenied", "sourceIPAddress": "delivery.logs.amazonaws.com"}),
            ),
            false,
        ),
        doc(
            "cis_4_1_head_bucket_excluded",
            CIS_4_1,
            cloudtrail(
                "HeadBucket",
                "s3.amazonaws.com",
                json!({"errorCode": "AccessDenied"}),
            ),
            false,
        ),
        doc(
            "cis_4_1_no_error",
            CIS_4_1,
            cloudtrail("RunInstances", "ec2.amazonaws.com", json!({})),
            false,
        ),
        doc(
            "cis_4_2_login_without_mfa",
            CIS_4_2,
            cloudtrail(
                "ConsoleLogin",
                "signin.amazonaws.com",
                json!({"additionalEventData": {"MFAUsed": "No"}}),
            ),
            true,
        ),
        doc(
            "aws_unknown_cis_4_2_login_without_mfa_field",
            CIS_4_2,
            cloudtrail("ConsoleLogin", "signin.amazonaws.com", json!({})),
            true,
        ),
        doc(
            "cis_4_2_login_with_mfa",
            CIS_4_2,
            cloudtrail(
                "ConsoleLogin",
                "signin.amazonaws.com",
                json!({"additionalEventData": {"MFAUsed": "Yes"}}),
            ),
            false,
        ),
        doc(
            "cis_4_2_v2_success_without_mfa",
            CIS_4_2_V2,
            cloudtrail(
                "ConsoleLogin",
                "signin.amazonaws.com",
                json!({"additionalEventData": {"MFAUsed": "No"}, "responseElements": {"ConsoleLogin": "Success"}}),
            ),
            true,
        ),
        doc(
            "cis_4_2_v2_failure_without_mfa",
            CIS_4_2_V2,
            cloudtrail(
                "ConsoleLogin",
                "signin.amazonaws.com",
                json!({"additionalEventData": {"MFAUsed": "No"}, "responseElements": {"ConsoleLogin": "Failure"}}),
            ),
            false,
        ),
        doc(
            "cis_4_3_root_usage",
            CIS_4_3,
            cloudtrail("ConsoleLogin", "signin.amazonaws.com", root.clone()),
            true,
        ),
        doc(
            "cis_4_3_root_invoked_by_service",
            CIS_4_3,
            cloudtrail(
                "PutObject",
                "s3.amazonaws.com",
                json!({"userIdentity": {"type": "Root", "invokedBy": "s3.amazonaws.com"}}),
            ),
            false,
        ),
        doc(
            "cis_4_3_root_service_event",
            CIS_4_3,
            cloudtrail(
                "ConsoleLogin",
                "signin.amazonaws.com",
                json!({"userIdentity": {"type": "Root"}, "eventType": "AwsServiceEvent"}),
            ),
            false,
        ),
        doc(
            "cis_4_3_iam_user",
            CIS_4_3,
            cloudtrail("ConsoleLogin", "signin.amazonaws.com", json!({})),
            false,
        ),
        doc(
            "cis_4_6_failed_console_auth",
            CIS_4_6,
            cloudtrail(
                "ConsoleLogin",
                "signin.amazonaws.com",
                json!({"errorMessage": "Failed authentication"}),
            ),
            true,
        ),
        doc(
            "cis_4_6_successful_login",
            CIS_4_6,
            cloudtrail(
                "ConsoleLogin",
                "signin.amazonaws.com",
                json!({"responseElements": {"ConsoleLogin": "Success"}}),
            ),
            false,
        ),
        doc(
            "cis_4_7_disable_key",
            CIS_4_7,
            cloudtrail("DisableKey", "kms.amazonaws.com", json!({})),
            true,
        ),
        doc(
            "cis_4_7_schedule_deletion",
            CIS_4_7,
            cloudtrail("ScheduleKeyDeletion", "kms.amazonaws.com", json!({})),
            true,
        ),
        doc(
            "cis_4_7_encrypt",
            CIS_4_7,
            cloudtrail("Encrypt", "kms.amazonaws.com", json!({})),
            false,
        ),
        doc(
            "cis_4_7_other_service",
            CIS_4_7,
            cloudtrail("DisableKey", "other.amazonaws.com", json!({})),
            false,
        ),
        doc(
            "cis_4_10_security_group_change",
            CIS_4_10,
            cloudtrail(
                "AuthorizeSecurityGroupIngress",
                "ec2.amazonaws.com",
                json!({}),
            ),
            true,
        ),
        doc(
            "cis_4_10_delete_security_group",
            CIS_4_10,
            cloudtrail("DeleteSecurityGroup", "ec2.amazonaws.com", json!({})),
            true,
        ),
        doc(
            "cis_4_10_describe_is_not_a_change",
            CIS_4_10,
            cloudtrail("DescribeSecurityGroups", "ec2.amazonaws.com", json!({})),
            false,
        ),
        doc(
            "cis_4_15_create_account",
            CIS_4_15,
            cloudtrail("CreateAccount", "organizations.amazonaws.com", json!({})),
            true,
        ),
        doc(
            "cis_4_15_update_ou",
            CIS_4_15,
            cloudtrail(
                "UpdateOrganizationalUnit",
                "organizations.amazonaws.com",
                json!({}),
            ),
            true,
        ),
        doc(
            "cis_4_15_describe",
            CIS_4_15,
            cloudtrail(
                "DescribeOrganization",
                "organizations.amazonaws.com",
                json!({}),
            ),
            false,
        ),
        doc(
            "cis_4_15_other_service",
            CIS_4_15,
            cloudtrail("CreateAccount", "iam.amazonaws.com", json!({})),
            false,
        ),
    ]);
}

#[test]
fn cis_4_15_lists_all_18_event_names() {
    let filter = Filter::parse(CIS_4_15).unwrap();
    let names = filter
        .selectors()
        .iter()
        .filter(|p| p.to_string() == "eventName")
        .count();
    assert_eq!(names, 18);
}
