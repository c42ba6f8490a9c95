"""Runs statements on chDB, ClickHouse in-process, for ingest/tests/chdb.rs.

    python run.py <statements.json> <answers.json>

statements.json: {"path": <database folder>, "statements": [{"name", "sql"}]}.
The statements run in order in one persistent session on that folder (so
MergeTree tables and materialized views work as on a server), each
answering in TabSeparated. answers.json gets {"version": <version()>,
"answers": [{"name", "output"} or {"name", "error"}]}, one per statement:
a failing statement is reported and the rest still run.
"""

import json
import sys

from chdb import session


def main(statements_path, answers_path):
    with open(statements_path, encoding="utf-8") as f:
        job = json.load(f)
    db = session.Session(job["path"])
    answers = []
    try:
        version = db.query("SELECT version()", "TabSeparated").bytes().decode().strip()
        for statement in job["statements"]:
            answer = {"name": statement["name"]}
            try:
                result = db.query(statement["sql"], "TabSeparated")
                answer["output"] = result.bytes().decode("utf-8")
            except Exception as err:  # chdb raises ChdbError; report any.
                answer["error"] = str(err)
            answers.append(answer)
    finally:
        db.close()
    with open(answers_path, "w", encoding="utf-8") as f:
        json.dump({"version": version, "answers": answers}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
