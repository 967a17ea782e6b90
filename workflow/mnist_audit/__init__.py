"""mnist_audit: the library behind the MNIST tutorial-claims benchmark.

Modules, from the bottom up (each imports only modules above it in this list):
    quiet        TensorFlow's start-up INFO lines kept out of logs and terminals
    files        the one atomic writer (temporary name, then rename) and checksums
    retry        one retry policy for network work (downloads, the tracking store)
    recipes      the types (Recipe, Claim, Architecture) and the rules of overrides
    registry     the seven architectures: published recipes, claims, fidelity notes; look-ups
    settings     the training settings, defined once (the config, the CLI and train_run read them)
    config       config helpers shared by the Snakefile and the CLI (schema, coercion, run keys)
    data         MNIST files and checksums, IDX parsing, the split, a job's arrays
    download     fetch and verify the files from ordered mirrors
    devices      GPU detection, per-GPU leases, backend set-up
    provenance   code version, package versions, platform
    optimizers   TF1's Adam and RMSProp and the recipes' losses, in Keras 3
    models       Keras 3 builders (@builder), compilation, parameter and MAC counts
    loops        data order, budget plan, the compiled epoch loop, evaluation sets
    checkpoint   resume state: model, optimizer and dropout RNG after each chunk
    runs         the run record (RunRecord): written and read here only; the arch:variant label
    train        one training job of the port, as a short list of steps
    originals/   the authors' programs in TF1 graph mode: an independent check of the ports
    job          the scripts' runtime: logging, one error message, the training job
    tracking/    MLflow: store set-up, what one run logs, logged models, one run per result, the report run
    tables       what the report's modules share: row order, Markdown, banners
    audit        statistics of the claim audit: intervals, k/n, verdicts
    portpower    the pairs a port-versus-original row needs: TOST's power, exact by quadrature
    portcheck    port versus original: pairs within a CPU kind and platform, Welch or paired t,
                 TOST, McNemar per pair, speed both ways
    accounting   parameters, layers and MACs per architecture
    plots        the report's plots (seaborn)
    runtable     the runs table (one tidy row per metrics.json) and the histories
    report/      the report's pages: text, landing page, the whole report build
    publish      the published audit: copy finished runs in, rebuild its report
    bench_timing timing side by side: interleaved calls, ratios within a repetition
    bench_levers the training path against plain model.fit and the TF1 loop, each lever off
    bench_processes  levers across processes: threads, packed jobs, start-up, a job's overhead
    bench        the training-path benchmark: runs the levers, writes its tables
    cli          the mnist-audit command (argparse only)
"""

import os

from . import quiet

# TensorFlow's INFO lines are kept out of every log and terminal: those of its import by
# quiet (they come before its log level is read), the later ones by the level; its warnings
# and errors still show. A user's own TF_CPP_MIN_LOG_LEVEL wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
quiet.install()

__version__ = "0.1.0"
