"""One measurement, one deployment (calibrate.twins): rows of a run table that record the same measured run
get the facts they agree on, through `calibrate enrich --facts` on real files."""
from __future__ import annotations

import csv
import sys

from calibrate.enrich import FILLED, enrich
from estimator.run_facts import COLUMNS
from servecast.cli import main
from tests.calibrate.inferencex_fixture import HEADER, _src

DIS = ("sglang,0.5.8,deepseek-ai/DeepSeek-R1,h100_sxm,fp8,disagg,1024,1024,fp8,fp8_block,,,,,,,"
       ",,16,1,1,16,1,,,16,1,1,16,1,{ttft},9.13")


def _table(tmp_path, rows: list[tuple[str, str, int, str, str]], facts: dict[str, dict]):
    """rows: (id, source file, concurrency, decode tp, TTFT); facts: id -> the fact columns it states."""
    runs = tmp_path / "runs.csv"
    lines = [f"{rid},{_src('2026-02-13T03:10:06Z', c, 'lmsysorg/sglang:v0.5.8', src)},"
             f"{DIS.format(ttft=t).replace(',16,1,1,16,1,,,16,', f',16,1,1,16,1,,,{tp},')}"
             for rid, src, c, tp, t in rows]
    runs.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    path = tmp_path / "facts.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", *FILLED, *COLUMNS])
        w.writeheader()
        for rid, got in facts.items():
            w.writerow({"id": rid, "enrich_status": "ambiguous", "spec_decoding": "unknown", **got})
    return runs, path


def _rows(text: str) -> dict[str, dict]:
    return {r["id"]: r for r in csv.DictReader(text.splitlines())}


EAGLE = "decode.speculative-algorithm=EAGLE;decode.stream-interval=1;decode.tp-size=16"
PLAIN = "decode.stream-interval=1;decode.tp-size=16"


def test_twins_keep_what_they_agree_on_and_lose_what_they_contradict(tmp_path):
    runs, facts = _table(tmp_path, [("mtp", "2026-03-25.csv", 1, "16", "211.09"),
                                    ("stp", "2026-04-06.csv", 1, "16", "211.09"),
                                    ("alone", "2026-04-06.csv", 2, "16", "236.9")], {
        "mtp": {"spec_decoding": "on", "spec_method": "mtp", "spec_tokens": "2", "engine_flags": EAGLE,
                "decode_mem_fraction": "0.9", "client_num_prompts": "10"},
        "stp": {"spec_decoding": "off", "engine_flags": PLAIN, "client_num_prompts": "10", "client_num_warmups": "2"},
        "alone": {"spec_decoding": "on", "spec_method": "mtp", "spec_tokens": "2", "engine_flags": EAGLE}})
    text, report = enrich(runs, facts=facts)
    rows = _rows(text)
    for rid in ("mtp", "stp"):   # one run: replayed once with EAGLE and once without before
        r = rows[rid]
        assert (r["spec_decoding"], r["spec_method"], r["spec_tokens"]) == ("ambiguous", "", "")
        flags = dict(kv.split("=", 1) for kv in r["engine_flags"].split(";"))
        assert flags == {"decode.speculative-algorithm": "?", "decode.stream-interval": "1", "decode.tp-size": "16"}
        # a fact one twin states and the other does not contradict is the run's
        assert (r["decode_mem_fraction"], r["client_num_prompts"], r["client_num_warmups"]) == ("0.9", "10", "2")
        assert "one measurement with" in r["enrich_reason"]
    assert rows["alone"]["spec_decoding"] == "on" and rows["alone"]["engine_flags"] == EAGLE
    assert report.twins == 2


def test_one_measurement_in_two_layout_conventions_is_one_run_and_other_loads_are_not(tmp_path):
    """One source file writes tp x ep in tp_size (tp16 for the other's tp4 / ep4): the measurement, not
    the layout columns, says which rows are one run; the same values at another concurrency are another."""
    runs, facts = _table(tmp_path, [("tp16", "2026-03-25.csv", 1, "16", "211.09"),
                                    ("tp8", "2026-04-06.csv", 1, "8", "211.09"),
                                    ("c2", "2026-04-06.csv", 2, "16", "211.09")], {
        "tp16": {"spec_decoding": "ambiguous", "engine_flags": EAGLE.replace("EAGLE", "?")},
        "tp8": {"spec_decoding": "off", "engine_flags": PLAIN},
        "c2": {"spec_decoding": "off", "engine_flags": PLAIN}})
    text, report = enrich(runs, facts=facts)
    rows = _rows(text)
    # an ambiguous row's candidates include its twin's answer: the run is the plain one
    assert [rows[r]["spec_decoding"] for r in ("tp16", "tp8", "c2")] == ["off", "off", "off"]
    assert rows["tp16"]["engine_flags"] == PLAIN           # `?`: unresolved among its candidates; absent in the twin's
    assert rows["tp8"]["decode_tp_size"] == "8"            # the table's own columns stay as recorded
    assert report.twins == 1                               # only the ambiguous row changed


def test_one_mean_printed_apart_in_its_last_digit_is_one_run_and_a_near_value_is_not(tmp_path):
    """The two source files print some of one run's means a unit or two apart in the 17th digit (the same
    mean computed in another order): equal to 12 significant digits is one run; a value that differs in
    the 10th digit is another run."""
    runs, facts = _table(tmp_path, [("a", "2026-03-25.csv", 16, "16", "461.99119008379057"),
                                    ("b", "2026-04-06.csv", 16, "16", "461.9911900837906"),
                                    ("c", "2026-04-06.csv", 16, "16", "461.9911903")],
                         {r: {"spec_decoding": v} for r, v in (("a", "on"), ("b", "off"), ("c", "on"))})
    text, report = enrich(runs, facts=facts)
    assert [_rows(text)[r]["spec_decoding"] for r in "abc"] == ["ambiguous", "ambiguous", "on"]
    assert report.twins == 2


def test_rows_without_a_measurement_are_no_ones_twins(tmp_path):
    runs, facts = _table(tmp_path, [("a", "2026-03-25.csv", 1, "16", "nan"), ("b", "2026-04-06.csv", 1, "16", "nan")],
                         {"a": {"spec_decoding": "on"}, "b": {"spec_decoding": "off"}})
    text, report = enrich(runs, facts=facts)
    assert [_rows(text)[r]["spec_decoding"] for r in "ab"] == ["on", "off"] and report.twins == 0


def _enrich_cli(monkeypatch, capsys, runs, facts, out) -> str:
    """`servecast calibrate enrich RUNS --facts FACTS --out OUT` in this process; its stdout, one line."""
    monkeypatch.setattr(sys, "argv", ["servecast", "calibrate", "enrich", str(runs), "--facts", str(facts), "--out", str(out)])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    return " ".join(capsys.readouterr().out.split())


def test_the_cli_says_how_many_rows_it_reconciled(tmp_path, capsys, monkeypatch):
    runs, facts = _table(tmp_path, [("a", "2026-03-25.csv", 1, "16", "211.09"), ("b", "2026-04-06.csv", 1, "16", "211.09")],
                         {"a": {"spec_decoding": "on"}, "b": {"spec_decoding": "off"}})
    out = tmp_path / "enriched.csv"
    text = _enrich_cli(monkeypatch, capsys, runs, facts, out)
    assert "2 rows recording a measurement another row records too" in text
    assert {r["spec_decoding"] for r in csv.DictReader(out.open())} == {"ambiguous"}
    # ... so which deployment ran is not known: the comparisons set both aside (estimator.set_aside.unknown_deployment)
    assert "2 runs whose configs list their point both with and without speculative decoding" in text


def test_the_cli_says_how_many_runs_were_measured_on_a_cold_server(tmp_path, capsys, monkeypatch):
    runs, facts = _table(tmp_path, [("a", "2026-03-25.csv", 1, "16", "211.09"), ("b", "2026-04-06.csv", 2, "16", "300.5")],
                         {"a": {"client_num_warmups": "0"}, "b": {"client_num_warmups": "8"}})
    text = _enrich_cli(monkeypatch, capsys, runs, facts, tmp_path / "enriched.csv")
    assert "1 runs measured on a cold server" in text


def test_the_training_tables_twins(silicon_csv):
    """On the training table with the committed facts: the H100 SGLang runs listed once under an EAGLE
    recipe and once under a plain one are `ambiguous` in both rows (one pair's TPOT printed apart in the
    last digit), and the H200 TRT-LLM runs listed once `ambiguous` and once plain are plain in both."""
    from calibrate.enrich import TRAINING_FACTS

    text, report = enrich(silicon_csv, facts=TRAINING_FACTS)
    rows = _rows(text)
    h100 = [r for i, r in rows.items() if "h100_sxm_sglang_fp8_disagg_1024x1024_c1_tp16" in i]
    h200 = [r for i, r in rows.items() if "h200_sxm_trtllm_fp8_agg_1024x1024_c4_tp8" in i and "ep8" in i]
    assert len(h100) == 2 and {r["spec_decoding"] for r in h100} == {"ambiguous"}
    assert len(h200) == 2 and {r["spec_decoding"] for r in h200} == {"off"}
    near = [r for i, r in rows.items() if "h100_sxm_sglang_fp8_disagg_1024x8192_c16_tp16" in i]
    assert len(near) == 2 and {r["spec_decoding"] for r in near} == {"ambiguous"}
    assert report.twins == 27
