"""The on-device agent's command line: `run JOB_DIR [--resume]`, `repair JOB_DIR` and `info`."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device_agent",
                                     description="On-device trainer of orch.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train the job in a run folder")
    p_run.add_argument("job_dir", help="run folder holding job.json")
    p_run.add_argument("--resume", action="store_true",
                       help="continue from the folder's last checkpoint")
    p_repair = sub.add_parser("repair", help="before a resume: cut a run folder's events "
                              "file to its valid prefix (two agents wrote it at once)")
    p_repair.add_argument("job_dir", help="run folder holding job.json")
    sub.add_parser("info", help="print what this runtime has, as JSON")
    args = parser.parse_args(argv)
    if args.command == "repair":
        from device_agent.events import repair_folder

        return repair_folder(args.job_dir)
    if args.command == "info":
        from device_agent.info import info

        sys.stdout.write(json.dumps(info(), indent=1) + "\n")
        return 0
    from device_agent.run import run

    return run(args.job_dir, resume=args.resume)


if __name__ == "__main__":
    sys.exit(main())
