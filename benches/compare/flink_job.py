"""PyFlink job: CIS 4.6 and CIS 4.1 over a CloudTrail JSON-lines file.

One task slot (parallelism 1), event-time tumbling windows of 5 minutes by
recipientAccountId, thresholds as in the trailwatch rules. Writes
`rule<TAB>key<TAB>window start (epoch ms)` per breaching window.
Usage: flink_job.py INPUT.jsonl OUTPUT.tsv
"""

import sys

from pyflink.table import EnvironmentSettings, TableEnvironment


def main(source: str, target: str) -> None:
    env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    env.get_config().set("parallelism.default", "1")
    env.get_config().set("table.local-time-zone", "UTC")
    env.execute_sql(f"""
        CREATE TABLE raw_lines (line STRING) WITH (
            'connector' = 'filesystem', 'path' = '{source}', 'format' = 'raw')
    """)
    env.execute_sql("""
        CREATE TEMPORARY VIEW trail AS SELECT
            JSON_VALUE(line, '$.eventName') AS event_name,
            JSON_VALUE(line, '$.errorCode') AS error_code,
            JSON_VALUE(line, '$.errorMessage') AS error_message,
            JSON_VALUE(line, '$.sourceIPAddress') AS source_ip,
            JSON_VALUE(line, '$.recipientAccountId') AS account,
            TO_TIMESTAMP(REPLACE(REPLACE(JSON_VALUE(line, '$.eventTime'), 'T', ' '), 'Z', ''))
                AS event_time
        FROM raw_lines
    """)
    query = """
        SELECT 'cis-4.6-console-auth-failures', account,
               UNIX_TIMESTAMP(CAST(TUMBLE_START(event_time, INTERVAL '5' MINUTE) AS STRING)) * 1000
        FROM trail
        WHERE event_name = 'ConsoleLogin' AND error_message = 'Failed authentication'
        GROUP BY TUMBLE(event_time, INTERVAL '5' MINUTE), account
        HAVING COUNT(*) >= 3
        UNION ALL
        SELECT 'cis-4.1-unauthorized-api-calls', account,
               UNIX_TIMESTAMP(CAST(TUMBLE_START(event_time, INTERVAL '5' MINUTE) AS STRING)) * 1000
        FROM trail
        WHERE (error_code LIKE '%UnauthorizedOperation' OR error_code LIKE 'AccessDenied%')
          AND (source_ip IS NULL OR source_ip <> 'delivery.logs.amazonaws.com')
          AND (event_name IS NULL OR event_name <> 'HeadBucket')
        GROUP BY TUMBLE(event_time, INTERVAL '5' MINUTE), account
        HAVING COUNT(*) >= 1
    """
    with open(target, "w") as out, env.execute_sql(query).collect() as results:
        for rule, key, start in results:
            out.write(f"{rule}\t{key}\t{start}\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
