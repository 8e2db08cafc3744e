"""The on-device agent's command line: `run JOB_DIR [--resume] [--standby S]`, `repair JOB_DIR`
and `info`."""

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
    p_run.add_argument("--standby", type=float, metavar="SECONDS",
                       help="start warm: import everything, then wait this long for the "
                            "host to write job.json (exit 0 if it does not)")
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
    from device_agent.run import run  # numpy and the interpreter: the slow part of a start

    if args.standby is not None:
        from device_agent.runtime import interpreter_version
        from device_agent.standby import wait_for_job

        interpreter_version()  # its package metadata too
        if not wait_for_job(args.job_dir, args.standby):
            return 0
    return run(args.job_dir, resume=args.resume)


if __name__ == "__main__":
    sys.exit(main())
