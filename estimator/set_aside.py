"""Which measured runs are predicted but not compared: a measurement that is not the steady state the
estimator and the simulator model, or of a deployment the row does not pin down. `estimate --from-runs`
predicts every row; calibration (calibrate.predict.base_frame), validation and the accuracy scripts skip
these and give `set_aside`'s reason as the row's status."""
from __future__ import annotations

from estimator.engines import profile_for
from estimator.run_facts import SpecStatus
from estimator.runs import RunRow
from perfdb.types import Backend


def cold_start(row: RunRow) -> str | None:
    """Why the row's measurement is not the steady state the estimator and the simulator model, or None.

    A client that sent no warm-up prompts (client_num_warmups 0: at most benchmark_serving.py's one test
    request) to a freshly started server whose engine warms only decode shapes before serving
    (EngineProfile.warms_prefill_at_start) measured its first prompts building, tuning or loading the
    prefill kernels at the run's shapes: seconds per new shape, in the TTFT of the first wave and the
    TPOT of whatever ran beside it. No kernel table prices that, and a fit to it would carry it into
    every plan. Such rows are predicted as any other (`estimate --from-runs`) but not compared:
    calibration, validation and the accuracy benchmarks skip them and say why (InferenceX's launch
    scripts start a server per run, so `0` is a cold server there)."""
    if row.facts.num_warmups != 0 or row.backend not in {b.value for b in Backend}:
        return None
    if profile_for(Backend(row.backend)).warms_prefill_at_start:
        return None
    return (f"cold start: no warm-up prompts before measuring, and {row.backend} warms only decode shapes at start "
            "(its first prompts paid first-use kernel costs; EngineProfile.warms_prefill_at_start)")


def unknown_deployment(row: RunRow) -> str | None:
    """Why the row's deployment is not known well enough to compare a prediction with it, or None.

    Two facts the benchmark configs can leave open, each changing TTFT and TPOT by up to 2x, with nothing
    in the row to say which deployment ran: a prediction is of one of them (the fill-in rule's), its error
    against the other measures that guess, not the model, and a calibration fitted to both learns their
    mixture. Predicted, not compared (as `cold_start`):

    - speculative decoding: the enrichment found the run's point (backend, system, model, ISL / OSL,
      concurrency) listed both with and without it (SpecStatus.AMBIGUOUS: 311 of the 2,437 training rows,
      pairs of runs of one point in one source file, one of them drafting; B200 SGLang disaggregated
      DeepSeek-R1 at 4 clients measured 4.7 and 9.8 ms TPOT);
    - worker counts of a disaggregated run: configs describing the run were found (ConfigMatch.found) and
      still leave its prefill or decode worker count open, which they do only where the matching points
      list it with different counts (calibrate.enrich: "matching config points disagree on worker counts";
      B200 FP8 8k/1k at 64 clients: 1P1D or 1P4D). A row no config describes (a plain run table, a user's
      own runs) keeps the estimator's fill-in and stays compared: nothing says its counts are in doubt."""
    if row.facts.spec is SpecStatus.AMBIGUOUS:
        return ("speculative decoding not known: the configs list this point with and without it (spec_decoding "
                "ambiguous), and the row does not say which deployment ran")
    if row.mode == "disagg" and row.facts.configs.found and not (
            row.prefill and row.prefill.workers and row.decode and row.decode.workers):
        return ("worker counts not known: the configs that describe this run list it with different prefill / "
                "decode worker counts, and the row records none")
    return None


def set_aside(row: RunRow) -> str | None:
    """Why a measured row is predicted (`estimate --from-runs`) but not compared, or None: calibration,
    validation and the accuracy benchmarks skip it and say why. A measurement that is not the steady state
    the models describe (`cold_start`), or of a deployment the row does not pin down (`unknown_deployment`)."""
    return cold_start(row) or unknown_deployment(row)
