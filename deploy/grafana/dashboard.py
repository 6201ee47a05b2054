"""Generates trailwatch.json (the Grafana dashboard): python3 dashboard.py.

Kept as code so panels stay consistent; the JSON is committed and is what
users import. render_preview.py draws the same panels from real data.
"""
import json

DS = {"type": "prometheus", "uid": "${datasource}"}
panels = []


def panel(title, kind, x, y, w, h, targets, unit="short", description="", stack=False):
    p = {
        "id": len(panels) + 1,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 15,
            "lineWidth": 1,
            "stacking": {"mode": "normal" if stack else "none"},
        }
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "none"}
    panels.append(p)


RI = "$__rate_interval"
J = 'job=~"$job"'
panel("Ready", "stat", 0, 0, 4, 4, [(f"min(trailwatch_ready{{{J}}})", "ready")],
      description="1 when every pod's sources are assigned input and consuming (/readyz).")
panel("Records/s", "stat", 4, 0, 5, 4, [(f"sum(rate(trailwatch_records_received_total{{{J}}}[{RI}]))", "records/s")], unit="reqps")
panel("Alerts (1h)", "stat", 9, 0, 5, 4, [(f'sum(increase(trailwatch_alerts_total{{{J},activity="create"}}[1h]))', "alerts")])
panel("Decode failure ratio", "stat", 14, 0, 5, 4,
      [(f"sum(rate(trailwatch_records_failed_total{{{J}}}[{RI}])) / clamp_min(sum(rate(trailwatch_records_received_total{{{J}}}[{RI}])), 1)", "failed")],
      unit="percentunit")
panel("Version", "stat", 19, 0, 5, 4, [(f"count by (version) (trailwatch_build_info{{{J}}})", "{{version}}")])

panel("Throughput", "timeseries", 0, 4, 12, 8, [
    (f"sum by (source) (rate(trailwatch_records_received_total{{{J}}}[{RI}]))", "received {{source}}"),
    (f"sum(rate(trailwatch_records_decoded_total{{{J}}}[{RI}]))", "events decoded"),
    (f"sum(rate(trailwatch_rule_matches_total{{{J}}}[{RI}]))", "rule matches"),
], unit="reqps", description="Records read per second by source, events decoded and rule matches.")
panel("Input lag", "timeseries", 12, 4, 12, 8, [
    (f"sum by (partition) (trailwatch_kafka_consumer_lag{{{J}}})", "kafka p{{partition}}"),
    (f"max by (shard) (trailwatch_kinesis_millis_behind_latest{{{J}}}) / 1000", "kinesis {{shard}} (s)"),
    (f"histogram_quantile(0.99, sum by (le) (rate(trailwatch_event_time_lag_seconds_bucket{{{J}}}[{RI}])))", "event-time lag p99 (s)"),
], description="Kafka consumer lag (messages), Kinesis seconds behind latest, and p99 alert time minus event time.")

panel("Alerts by rule", "timeseries", 0, 12, 12, 8, [
    (f'sum by (rule) (increase(trailwatch_alerts_total{{{J},activity="create"}}[{RI}]))', "{{rule}}"),
], stack=True, description="New alerts (OCSF activity Create) per rule.")
panel("Errors", "timeseries", 12, 12, 12, 8, [
    (f"sum by (reason) (rate(trailwatch_records_failed_total{{{J}}}[{RI}])) > 0", "decode {{reason}}"),
    (f"sum(rate(trailwatch_dead_letters_total{{{J}}}[{RI}]))", "dead letters"),
    (f"sum by (sink) (rate(trailwatch_sink_errors_total{{{J}}}[{RI}]))", "sink errors {{sink}}"),
    (f"sum(rate(trailwatch_events_late_total{{{J}}}[{RI}]))", "late rule matches"),
    (f"sum(rate(trailwatch_windows_shed_total{{{J}}}[{RI}]))", "windows shed"),
], unit="reqps")

panel("Processing latency", "timeseries", 0, 20, 12, 8, [
    (f"histogram_quantile(0.5, sum by (le) (rate(trailwatch_processing_latency_seconds_bucket{{{J}}}[{RI}])))", "p50"),
    (f"histogram_quantile(0.99, sum by (le) (rate(trailwatch_processing_latency_seconds_bucket{{{J}}}[{RI}])))", "p99"),
], unit="s", description="Batch arrival to matches routed to shards.")
panel("Window state", "timeseries", 12, 20, 12, 8, [
    (f"sum by (shard) (trailwatch_open_windows{{{J}}})", "open windows shard {{shard}}"),
    (f"sum(trailwatch_state_bytes{{{J}}}) / 1024", "state KiB (all shards)"),
], description="Open window aggregates per shard and approximate state size.")

dashboard = {
    "title": "trailwatch",
    "uid": "trailwatch",
    "description": "trailwatch engine health: throughput, input lag, alerts by rule, errors, latency, state.",
    "tags": ["trailwatch", "security"],
    "timezone": "utc",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
        {"name": "job", "type": "query", "datasource": DS, "label": "Job",
         "query": "label_values(trailwatch_build_info, job)", "refresh": 2, "includeAll": True,
         "multi": True, "current": {"text": "All", "value": "$__all"}},
    ]},
    "panels": panels,
}

with open("trailwatch.json", "w") as f:
    json.dump(dashboard, f, indent=2)
    f.write("\n")
