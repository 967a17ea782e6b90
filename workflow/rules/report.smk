# The report: tidy runs table, claim audit, parameter and timing tables, plots, README,
# and one aggregate MLflow run (logic: workflow/mnist_audit/report/ and the modules it names;
# the MLflow run: mnist_audit.tracking).
# Every table and plot is also in the HTML report:  snakemake --report results/report.html
REPORT_DIR = "results/report"
# The ports' models (a TF1 original has its port's parameters)
REPORT_MODELS = list(dict.fromkeys((a, v) for a, v, _ in RUNS if not audit_config.original_of(v)))
# The report's pages beside README.md and summary.html (mnist_audit.report.pages.PAGES; a test
# checks that the lists agree), each as Markdown and HTML
REPORT_PAGES = ["method", "port-vs-original", "platforms", "cost", "provenance"]


rule model_accounting:
    # after the data, though it reads none: a run whose download failed starts nothing else
    input:
        manifest=ancient(f"{DATA_DIR}/manifest.json"),
    output:
        parameters_csv=report(f"{REPORT_DIR}/tables/parameters.csv", caption="../report/parameters.rst", category="3. Cost", subcategory="Parameters"),
        parameters_md=report(f"{REPORT_DIR}/tables/parameters.md", caption="../report/parameters.rst", category="3. Cost", subcategory="Parameters"),
        layers_csv=report(f"{REPORT_DIR}/tables/layers.csv", caption="../report/layers.rst", category="3. Cost", subcategory="Parameters"),
        layers_md=report(f"{REPORT_DIR}/tables/layers.md", caption="../report/layers.rst", category="3. Cost", subcategory="Parameters"),
    params:
        models=REPORT_MODELS,
    conda:
        ENV
    log:
        "results/logs/report/model_accounting.log",
    script:
        "../scripts/model_accounting.py"


rule aggregate_runs:
    input:
        metrics=run_files("metrics.json"),
        parameters=rules.model_accounting.output.parameters_csv,
    output:
        runs=report(f"{REPORT_DIR}/runs.csv", caption="../report/runs.rst", category="4. Runs"),
    conda:
        ENV
    log:
        "results/logs/report/aggregate_runs.log",
    script:
        "../scripts/aggregate_runs.py"


rule report_tables_plots:
    input:
        runs=rules.aggregate_runs.output.runs,
        parameters=rules.model_accounting.output.parameters_csv,
        layers_md=rules.model_accounting.output.layers_md,
        histories=run_files("history.csv"),
        manifest=f"{DATA_DIR}/manifest.json",
    output:
        readme=report(f"{REPORT_DIR}/README.md", caption="../report/readme.rst", category="0. Read me first"),
        summary_html=report(f"{REPORT_DIR}/summary.html", caption="../report/summary.rst", category="0. Read me first"),
        # the HTML report's landing page (banner, verdicts): the Snakefile's report: once it exists
        landing=f"{REPORT_DIR}/landing.rst",
        pages=[f"{REPORT_DIR}/{page}.{ext}" for page in REPORT_PAGES for ext in ("md", "html")],
        # one page per tutorial (Markdown, HTML and its plot)
        tutorials=directory(f"{REPORT_DIR}/tutorials"),
        layers_html=f"{REPORT_DIR}/tables/layers.html",
        claim_audit_csv=report(f"{REPORT_DIR}/tables/claim_audit.csv", caption="../report/claim_audit.rst", category="1. Claim audit"),
        claim_audit_md=report(f"{REPORT_DIR}/tables/claim_audit.md", caption="../report/claim_audit.rst", category="1. Claim audit"),
        accuracy_per_seed=report(f"{REPORT_DIR}/plots/accuracy_per_seed.png", caption="../report/accuracy_per_seed.rst", category="1. Claim audit"),
        forest=report(f"{REPORT_DIR}/plots/forest.png", caption="../report/forest.rst", category="1. Claim audit"),
        port_vs_original=report(f"{REPORT_DIR}/plots/port_vs_original.png", caption="../report/port_vs_original.rst", category="5. Port versus original"),
        port_vs_original_csv=report(f"{REPORT_DIR}/tables/port_vs_original.csv", caption="../report/port_vs_original.rst", category="5. Port versus original"),
        port_vs_original_md=report(f"{REPORT_DIR}/tables/port_vs_original.md", caption="../report/port_vs_original.rst", category="5. Port versus original"),
        learning_curves_epoch=report(f"{REPORT_DIR}/plots/learning_curves_epoch.png", caption="../report/learning_curves_epoch.rst", category="2. Learning curves"),
        learning_curves_wall=report(f"{REPORT_DIR}/plots/learning_curves_wall.png", caption="../report/learning_curves_wall.rst", category="2. Learning curves"),
        accuracy_vs_params=report(f"{REPORT_DIR}/plots/accuracy_vs_params.png", caption="../report/accuracy_vs_params.rst", category="3. Cost", subcategory="Parameters"),
        accuracy_vs_time=report(f"{REPORT_DIR}/plots/accuracy_vs_time.png", caption="../report/accuracy_vs_time.rst", category="3. Cost", subcategory="Timing"),
        timing_csv=report(f"{REPORT_DIR}/tables/timing.csv", caption="../report/timing.rst", category="3. Cost", subcategory="Timing"),
        timing_md=report(f"{REPORT_DIR}/tables/timing.md", caption="../report/timing.rst", category="3. Cost", subcategory="Timing"),
        variance=report(f"{REPORT_DIR}/plots/variance.png", caption="../report/variance.rst", category="6. Platforms"),
        variance_csv=report(f"{REPORT_DIR}/tables/variance.csv", caption="../report/variance.rst", category="6. Platforms"),
        variance_md=report(f"{REPORT_DIR}/tables/variance.md", caption="../report/variance.rst", category="6. Platforms"),
        platform_verdicts_csv=report(f"{REPORT_DIR}/tables/platform_verdicts.csv", caption="../report/variance.rst", category="6. Platforms"),
        platform_verdicts_md=report(f"{REPORT_DIR}/tables/platform_verdicts.md", caption="../report/variance.rst", category="6. Platforms"),
    conda:
        ENV
    log:
        "results/logs/report/report_tables_plots.log",
    script:
        "../scripts/report_tables_plots.py"


rule log_report:
    input:
        sweep=rules.init_tracking.output.sweep,
        markers=run_files("mlflow_run.json"),
        runs=rules.aggregate_runs.output.runs,
        readme=rules.report_tables_plots.output.readme,
        audit=rules.report_tables_plots.output.claim_audit_csv,
        tables=[
            rules.report_tables_plots.output.claim_audit_csv,
            rules.report_tables_plots.output.claim_audit_md,
            rules.report_tables_plots.output.timing_csv,
            rules.report_tables_plots.output.timing_md,
            rules.report_tables_plots.output.port_vs_original_csv,
            rules.report_tables_plots.output.port_vs_original_md,
            rules.report_tables_plots.output.variance_csv,
            rules.report_tables_plots.output.variance_md,
            rules.report_tables_plots.output.platform_verdicts_csv,
            rules.report_tables_plots.output.platform_verdicts_md,
            rules.model_accounting.output.parameters_csv,
            rules.model_accounting.output.parameters_md,
            rules.model_accounting.output.layers_csv,
            rules.model_accounting.output.layers_md,
        ],
        plots=[
            rules.report_tables_plots.output.accuracy_per_seed,
            rules.report_tables_plots.output.forest,
            rules.report_tables_plots.output.port_vs_original,
            rules.report_tables_plots.output.learning_curves_epoch,
            rules.report_tables_plots.output.learning_curves_wall,
            rules.report_tables_plots.output.accuracy_vs_params,
            rules.report_tables_plots.output.accuracy_vs_time,
            rules.report_tables_plots.output.variance,
        ],
    output:
        marker=f"{REPORT_DIR}/mlflow_run.json",
    params:
        retries=config["mlflow"]["retries"],
    conda:
        ENV
    log:
        "results/logs/report/log_report.log",
    script:
        "../scripts/log_report.py"
