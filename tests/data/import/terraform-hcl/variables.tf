# Inputs of the module, in the style of the CIS benchmark Terraform
# modules: a log group, a namespace, a topic, thresholds.

variable "cloudtrail_log_group_name" {
  description = "CloudWatch Logs group that receives CloudTrail"
  type        = string
  default     = "CloudTrail/DefaultLogGroup"
}

variable "alarm_namespace" {
  type    = string
  default = "CISBenchmark"
}

variable "alarm_topic_name" {
  type    = string
  default = "cis-alarms"
}

# No default: set in terraform.tfvars.
variable "console_failure_threshold" {
  type = number
}

# No default and not in terraform.tfvars: only `--var` can set it.
variable "environment" {
  type = string
}

variable "enable_ec2_alarm" {
  type    = bool
  default = false
}
