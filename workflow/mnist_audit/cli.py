"""Command line: every pipeline step is usable without Snakemake.

    mnist-audit download --mirror URL_OR_DIR [--mirror ...] --out results/data/mnist
    mnist-audit train --arch thomas --seed 0 --data results/data/mnist/mnist.npz --out DIR
    mnist-audit original --arch mlp --seed 0 --port-init --out DIR   # the TF1 program, the port's init
    mnist-audit models                      # the registry: names, parameters, MACs, claims
    mnist-audit publish results/runs/*/*/seed*   # into audit/runs (published recipes only)
    mnist-audit publish --study DIR ...      # port-vs-original study runs (budget x0.02) into audit/portcheck
    mnist-audit report --audit audit        # audit/report/ from the committed records alone
    mnist-audit check my_mnist.py --claim "99%" --seeds 5 --out check-my_mnist   # any Keras MNIST file
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .job import exit_now, logged_errors, setup_logging, training_job
from .platforms import list_platforms
from .settings import TrainSettings, add_arguments, names

# The settings both training commands take (settings.TrainSettings); train takes them all.
NAMING, SHARED = ("arch", "variant"), ("budget_scale",)


def _cmd_download(a) -> int:
    from . import download

    manifest = download.fetch_split(Path(a.out), a.mirror or download.PUBLIC_MIRRORS, a.timeout, a.retries)
    print(json.dumps(manifest["counts"]))
    return 0


def _cmd_train(a) -> int:
    settings = TrainSettings.from_args(a).as_params()
    if a.platform != "default":  # applied by the job before TensorFlow is imported
        settings["platform"] = a.platform
    m = training_job(a.data, a.out, a.seed, settings, a.threads, a.jobs_per_gpu, not a.no_memory_growth,
                     stop_after_chunks=a.stop_after_epochs)
    print(json.dumps({k: m.get(k) for k in ("arch", "variant", "seed", "test_accuracy", "val_accuracy",
                                              "stopped_after_chunk")}))
    exit_now(0)  # a training process ends here (see exit_now)
    return 0


def _cmd_original(a) -> int:
    from .originals import train_original

    m = train_original(a.data, a.out, a.arch, a.variant, a.seed, budget_scale=a.budget_scale,
                       threads=a.threads, from_port=a.port_init)
    print(json.dumps({k: m.get(k) for k in ("arch", "variant", "seed", "initial_weights", "test_accuracy",
                                              "val_accuracy", "train_loss")}))
    return 0


def _cmd_models(a) -> int:
    from . import registry

    rows = []
    for name in a.names or registry.list_models():
        arch = registry.get_architecture(name)  # an unknown name: one message listing the known ones
        row = {"name": name, "author": arch.author, "baseline": arch.baseline,
               "variants": registry.list_variants(name), "claim": arch.claim.text,
               "claim_at_least": arch.claim.lower}
        if a.counts:
            from . import models

            row.update(params=models.param_count(name), macs_per_image=models.macs_per_image(name))
        rows.append(row)
    if a.json:
        print(json.dumps(rows, indent=1))
        return 0
    from tabulate import tabulate

    table = [{"name": r["name"], "kind": "baseline" if r["baseline"] else "tutorial", "author": r["author"],
              "variants": ", ".join(r["variants"]),
              "claim": f">= {100 * r['claim_at_least']:.4g}%" if r["claim_at_least"] is not None else "none",
              **({"params": f"{r['params']:,}", "MACs/image": f"{r['macs_per_image']:,}"} if a.counts else {})}
             for r in rows]
    print(tabulate(table, headers="keys", tablefmt="simple", disable_numparse=True,
                   colalign=("left",) * 5 + (("right", "right") if a.counts else ())))
    return 0


def _cmd_publish(a) -> int:
    from . import publish

    try:
        to = a.to or (f"audit/{publish.PORTCHECK_DIR}" if a.study else "audit/runs")
        done = publish.publish_runs(a.runs, to, study=a.study)
    except publish.PublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: len(v) for k, v in done.items()}))
    return 0


def _cmd_report(a) -> int:
    from . import publish

    try:
        result = publish.build_audit_report(a.audit)
        if a.update_readme:
            publish.update_readme(a.update_readme, result["status"])
    except publish.PublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result["status"])
    return 0


def _cmd_check(a) -> int:
    import logging

    from . import check

    out = Path(a.out or f"check-{Path(a.path).stem}")
    out.mkdir(parents=True, exist_ok=True)
    # the whole story (each seed's run, what the file printed) in the folder's log; errors also on screen
    to_file = logging.FileHandler(out / check.LOG_FILE, mode="w")
    to_file.setLevel(logging.INFO)
    to_screen = logging.StreamHandler(sys.stderr)
    to_screen.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, handlers=[to_file, to_screen], force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its store set-up chatter
    check.check(a.path, a.claim, a.seeds, budget_scale=a.budget_scale, out=out, mirrors=a.mirror, data=a.data,
                tracking_uri=a.tracking_uri, experiment=a.experiment, threads=a.threads)
    return 0


def _cmd_check_run(a) -> int:
    from . import check

    if a.log:
        setup_logging(a.log)
    with logged_errors():
        m = check.check_run(a.path, a.data, a.out, a.seed, budget_scale=a.budget_scale, threads=a.threads,
                            name=a.name)
    print(json.dumps({k: m.get(k) for k in ("arch", "seed", "test_correct", "n_test", "total_steps")}))
    exit_now(0)  # a training process ends here (see exit_now)
    return 0


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """What names one training run: the train and original commands share these."""
    add_arguments(p, NAMING)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="results/data/mnist/mnist.npz")
    p.add_argument("--out", required=True)
    add_arguments(p, SHARED)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mnist-audit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("download", help="download, verify and split MNIST")
    d.add_argument("--mirror", action="append", help="mirror URL or folder (repeatable, in order)")
    d.add_argument("--out", default="results/data/mnist")
    d.add_argument("--timeout", type=float, default=30)
    d.add_argument("--retries", type=int, default=2)
    d.set_defaults(fn=_cmd_download)
    t = sub.add_parser("train", help="train one architecture with one seed")
    _run_arguments(t)
    add_arguments(t, tuple(n for n in names() if n not in NAMING + SHARED))
    t.add_argument("--platform", default="default", choices=list_platforms(),
                   help="execution settings applied before TensorFlow is imported (mnist_audit.platforms)")
    t.add_argument("--threads", type=int, default=os.cpu_count())
    t.add_argument("--jobs-per-gpu", type=int, default=1)
    t.add_argument("--no-memory-growth", action="store_true")
    t.add_argument("--stop-after-epochs", type=int, help="stop early leaving a checkpoint (resume test)")
    t.set_defaults(fn=_cmd_train)
    o = sub.add_parser("original", help="train the author's program (TF1 graph) for one architecture and seed")
    _run_arguments(o)
    o.add_argument("--threads", type=int, default=1)
    o.add_argument("--port-init", action="store_true",
                   help="start from the port's initial weights for this seed instead of the original's own draw")
    o.set_defaults(fn=_cmd_original)
    m = sub.add_parser("models", help="list the registry")
    m.add_argument("names", nargs="*", metavar="NAME", help="only these architectures (default: all)")
    m.add_argument("--counts", action="store_true", help="also build each model to count parameters")
    m.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    m.set_defaults(fn=_cmd_models)
    p = sub.add_parser("publish", help="copy finished published-recipe runs into the published audit")
    p.add_argument("runs", nargs="+", help="run folders (results/runs/ARCH/VARIANT/seedN)")
    p.add_argument("--to", help="where (default audit/runs; with --study, audit/portcheck)")
    p.add_argument("--study", action="store_true",
                   help="runs of the port-versus-original study at its stated reduced budget (audit/portcheck)")
    p.set_defaults(fn=_cmd_publish)
    r = sub.add_parser("report", help="rebuild the published report from the committed records alone")
    r.add_argument("--audit", default="audit", help="the audit folder (runs/ in it, report/ written)")
    r.add_argument("--update-readme", metavar="README", help="also refresh that README's audit status")
    r.set_defaults(fn=_cmd_report)
    c = sub.add_parser("check", help="audit any Keras MNIST script or notebook against its claim, over seeds",
                       description="Run a Keras MNIST script (.py) or notebook (.ipynb) unchanged, once per seed, "
                       "on the verified MNIST; evaluate the last model fit was called on over the 10,000 test "
                       "images; judge the claim as the audit does; log every run to MLflow; write report.md "
                       "and report.html into --out.")
    c.add_argument("path", help="the script (.py) or notebook (.ipynb)")
    c.add_argument("--claim", required=True, help='the accuracy claimed, as written: "99%%", "99.25%%", "~98%%"')
    c.add_argument("--seeds", type=int, default=5, help="how many seeds (0, 1, ...; default 5)")
    c.add_argument("--budget-scale", type=float, default=1.0,
                   help="multiplies each fit's steps (epochs x steps per epoch); 1: the file's own epochs")
    c.add_argument("--mirror", action="append", help="where to get MNIST: a folder or URL (repeatable, in order; "
                   "default: the public mirrors); kept verified in ~/.cache/mnist-audit")
    c.add_argument("--data", help="a prepared split (mnist.npz of mnist-audit download) instead of --mirror")
    c.add_argument("--out", help="the output folder (default check-<file name>)")
    c.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else a sqlite "
                   "store in OUT/mlflow)")
    c.add_argument("--experiment", default="mnist-audit-check", help="MLflow experiment")
    c.add_argument("--threads", type=int, default=1, help="threads per run (default 1)")
    c.set_defaults(fn=_cmd_check)
    cr = sub.add_parser("check-run", help="one seed of check: run the file once, write its run record")
    cr.add_argument("path")
    cr.add_argument("--seed", type=int, default=0)
    cr.add_argument("--data", default="results/data/mnist/mnist.npz")
    cr.add_argument("--out", required=True)
    cr.add_argument("--budget-scale", type=float, default=1.0)
    cr.add_argument("--threads", type=int, default=1)
    cr.add_argument("--name", help="the runs' name (default: the file's name without its suffix)")
    cr.add_argument("--log", help="log to this file (default: standard error)")
    cr.set_defaults(fn=_cmd_check_run)
    return ap


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    setup_logging()
    with logged_errors():  # an error of ours is one message (a bad platform, a failed download), then exit 1
        return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
