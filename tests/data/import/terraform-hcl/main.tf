# CloudWatch alarms for CloudTrail, as a CIS-benchmark style Terraform
# module: filters and alarms joined through references, names built from
# locals, one pattern in a heredoc, and the shapes static evaluation cannot
# resolve (a function call, a data source, for_each, count = 0).

locals {
  prefix = "cis"
  patterns = {
    console_failures = "{ ($.eventName = ConsoleLogin) && ($.errorMessage = \"Failed authentication\") }"
  }
  controls = {
    "cloudtrail-changes" = "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || ($.eventName = StartLogging) || ($.eventName = StopLogging) }"
  }
}

resource "aws_sns_topic" "alarms" {
  name = var.alarm_topic_name
}

data "aws_sns_topic" "pager" {
  name = "pager"
}

# CIS 4.6: failed console authentication.
resource "aws_cloudwatch_log_metric_filter" "console_signin_failures" {
  name           = "${local.prefix}-console-signin-failures"
  pattern        = local.patterns.console_failures
  log_group_name = var.cloudtrail_log_group_name

  metric_transformation {
    name      = "ConsoleSigninFailureCount"
    namespace = var.alarm_namespace
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "console_signin_failures" {
  alarm_name          = "${local.prefix}-4.6-console-sign-in-failures"
  alarm_description   = "Failed console sign-ins in ${var.environment}"
  metric_name         = aws_cloudwatch_log_metric_filter.console_signin_failures.metric_transformation[0].name
  namespace           = aws_cloudwatch_log_metric_filter.console_signin_failures.metric_transformation[0].namespace
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.console_failure_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn, data.aws_sns_topic.pager.arn]
}

# CIS 4.3: root usage, pattern written as a heredoc.
resource "aws_cloudwatch_log_metric_filter" "root_usage" {
  name           = "${local.prefix}-root-usage"
  log_group_name = var.cloudtrail_log_group_name
  pattern        = <<PATTERN
{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }
PATTERN

  metric_transformation {
    name          = "RootAccountUsageCount"
    namespace     = var.alarm_namespace
    value         = "1"
    default_value = "0"
  }
}

resource "aws_cloudwatch_metric_alarm" "root_usage" {
  alarm_name          = "${local.prefix}-4.3-root-usage"
  alarm_description   = "Usage of the root user"
  metric_name         = "RootAccountUsageCount"
  namespace           = var.alarm_namespace
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  alarm_actions       = [aws_sns_topic.alarms.arn]

  # Not read by the importer, so never evaluated.
  tags = merge(var.common_tags, { control = "CIS 4.3" })
}

# Failures per source address: the dimension carries the address, and the
# alarm pins one address (an allow-listed bastion that must never fail).
resource "aws_cloudwatch_log_metric_filter" "signin_failures_by_ip" {
  name           = "${local.prefix}-signin-failures-by-ip"
  pattern        = local.patterns.console_failures
  log_group_name = var.cloudtrail_log_group_name

  metric_transformation {
    name      = "SigninFailuresByIp"
    namespace = var.alarm_namespace
    value     = "1"
    dimensions = {
      sourceIPAddress = "$.sourceIPAddress"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "bastion_signin_failures" {
  alarm_name          = "bastion-signin-failures"
  metric_name         = "SigninFailuresByIp"
  namespace           = var.alarm_namespace
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 3
  dimensions = {
    sourceIPAddress = "203.0.113.9"
  }
  alarm_actions = [aws_sns_topic.alarms.arn]
}

# A pattern read from a file: only Terraform knows it.
resource "aws_cloudwatch_log_metric_filter" "from_file" {
  name           = "from-file"
  pattern        = file("${path.module}/pattern.txt")
  log_group_name = var.cloudtrail_log_group_name

  metric_transformation {
    name      = "FromFile"
    namespace = var.alarm_namespace
    value     = "1"
  }
}

# One filter per control, as the CIS modules do with for_each.
resource "aws_cloudwatch_log_metric_filter" "controls" {
  for_each       = local.controls
  name           = each.key
  pattern        = each.value
  log_group_name = var.cloudtrail_log_group_name

  metric_transformation {
    name      = each.key
    namespace = var.alarm_namespace
    value     = "1"
  }
}

# Switched off by a variable.
resource "aws_cloudwatch_log_metric_filter" "ec2_changes" {
  count          = var.enable_ec2_alarm ? 1 : 0
  name           = "ec2-changes"
  pattern        = "{ ($.eventName = RunInstances) || ($.eventName = TerminateInstances) }"
  log_group_name = var.cloudtrail_log_group_name

  metric_transformation {
    name      = "EC2InstanceChanges"
    namespace = var.alarm_namespace
    value     = "1"
  }
}

# A child module: not followed (import its directory on its own).
module "org_trail" {
  source = "./modules/org-trail"
}
