"""The crash test at full scale: 100,000 records pushed by 4 clients while the gateway is SIGKILLed
3 times at random moments and started again, on SQLite and on PostgreSQL; then every acknowledged
record accounted for (stored once, pushed to and pulled by its consumers, the log verified).

Run: .venv/bin/python benchmarks/crash.py [--records 100000] [--kills 3] [--seed 1]
         [--postgres postgresql://postgres@127.0.0.1:5432/postgres | --no-postgres]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's crash harness

from bench_scale import drop_database, fresh_database

from tests.reliability.crash import crash_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server where the run may create a database")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runs = [("SQLite", f"sqlite:///{folder}/crash.db", None)]
        if not args.no_postgres:
            name, url = fresh_database(args.postgres)
            runs.append(("PostgreSQL", url, name))
        for label, store, database in runs:
            try:
                figures = crash_run(Path(folder) / label, store, records=args.records, kills=args.kills,
                                    seed=args.seed, batch=500)
            finally:
                if database:
                    drop_database(args.postgres, database)
            print(f"{label}: {json.dumps(figures.as_dict())}")
            lost = figures.lost_push + figures.lost_pull + figures.records - figures.acknowledged
            print(f"  {figures.records:,} records, {figures.kills} kills, {figures.acknowledged:,} acknowledged, "
                  f"lost {lost}, stored twice {figures.stored_twice}, pushed again after a kill "
                  f"{figures.repeated_pushes}, pulled twice {figures.repeated_pulls}, log verified "
                  f"{figures.log_verified}, {figures.seconds:.0f} s")


if __name__ == "__main__":
    main()
