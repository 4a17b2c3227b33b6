"""refcheck: our VAR re-implementation against the official-code reference set, and the comparison itself.

The expensive part (recomputing every reference output, ~1 min on 2 cores) runs once per session; the
comparison tests reuse it. The small synthetic tests pin down each tolerance rule on its own.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lsrs.verify.refcompare import (Row, compare_file, compare_outputs, has_problems, hidden_summary, logit_summary,
                                    verdict_counts)
from lsrs.verify.render import collapse_rows, render_table

REF_DIR = (Path(__file__).parents[1] / ".." / "shared" / "reference" / "var" / "refset").resolve()


def _replaced(tree: dict, keys: tuple, value) -> dict:
    """A copy of a nested dict/list tree with one leaf replaced; everything else is shared, not copied."""
    head, rest = keys[0], keys[1:]
    if isinstance(tree, list):
        out = list(tree)
    else:
        out = dict(tree)
    out[head] = value if not rest else _replaced(tree[head], rest, value)
    return out


def _by_path(rows: list[Row]) -> dict[str, Row]:
    return {f"{r.file}:{r.path}": r for r in rows}


def _failing(rows: list[Row]) -> set[str]:
    return {f"{r.file}:{r.path}" for r in rows if r.is_problem}


# ==================================================================================================
# the shared reference set
# ==================================================================================================
@pytest.fixture(scope="module")
def outputs():
    if not (REF_DIR / "meta.json").is_file():
        pytest.skip(f"shared reference set not found at {REF_DIR}")
    from lsrs.verify.refcheck import RefSet, compute_outputs
    ref = RefSet.open(REF_DIR)
    ref.check_files()
    return compute_outputs(ref)


def test_shared_set_has_no_failures(outputs):
    rows = compare_outputs(REF_DIR, outputs)
    table = render_table(rows)
    assert not has_problems(rows), table
    counts = verdict_counts(rows)
    assert counts["PASS"] >= 140 and counts["FAIL"] == counts["MISSING"] == 0, table
    paths = _by_path(rows)
    # the reduced-layout machinery was exercised: summaries, position subsets, rebuilt tensors
    for key in ("ref_var_teacher_forced.pth:logits_summary/top5_idx", "ref_var_teacher_forced.pth:logits",
                "ref_inference.pth:runs/greedy_cfg1.5/uncond_logits_summary/sketch",
                "ref_inference.pth:runs/greedy_cfg1.5/img_01", "ref_next_ar_inputs.pth:fhat_after_step",
                "ref_inference.pth:runs/smooth_cfg4_k900_p0.95/idx_Bl[4]"):
        assert paths[key].verdict == "PASS", paths[key]
    assert paths["ref_inference.pth:runs/smooth_cfg4_k900_p0.95/idx_Bl[5]"].verdict == "INFO"
    assert table.rstrip().splitlines()[-1].startswith("refcheck OK")
    # the comparison summarised and cut copies: our full-layout outputs are left as they were
    assert outputs["ref_var_teacher_forced.pth"]["logits"].shape[1] == 680
    assert "logits_summary" not in outputs["ref_var_teacher_forced.pth"]


def test_reference_tool_agrees(outputs, tmp_path):
    from lsrs.verify.refcheck import write_outputs
    write_outputs(outputs, tmp_path)
    proc = subprocess.run([sys.executable, str(REF_DIR / "compare_ref.py"), str(REF_DIR), str(tmp_path),
                           "--strict", "--only-problems"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "FAIL=0" in proc.stdout and "MISSING=0" in proc.stdout


def test_comparison_reports_real_errors(outputs):
    vq = outputs["ref_vqvae.pth"]
    bad = _replaced(outputs, ("ref_vqvae.pth", "decoded_raw"), vq["decoded_raw"] + 1e-3)
    token = outputs["ref_inference.pth"]["runs"]["greedy_cfg1.5"]["idx_Bl"][3].clone()
    token[0, 0] = (token[0, 0] + 1) % 4096
    bad = _replaced(bad, ("ref_inference.pth", "runs", "greedy_cfg1.5", "idx_Bl", 3), token)
    # a logit error at a position the reduced set does not store is caught by the summaries
    logits = outputs["ref_var_teacher_forced.pth"]["logits"].clone()
    logits[0, 100, logits[0, 100].argmax()] += 1e-3
    bad = _replaced(bad, ("ref_var_teacher_forced.pth", "logits"), logits)

    rows = compare_outputs(REF_DIR, bad, files=("ref_vqvae.pth", "ref_var_teacher_forced.pth", "ref_inference.pth"))
    assert _failing(rows) == {"ref_vqvae.pth:decoded_raw", "ref_inference.pth:runs/greedy_cfg1.5/idx_Bl[3]",
                              "ref_var_teacher_forced.pth:logits_summary/top6_val"}
    paths = _by_path(rows)
    assert paths["ref_inference.pth:runs/greedy_cfg1.5/idx_Bl[3]"].statistic.startswith("31/32 equal")
    assert paths["ref_vqvae.pth:decoded_raw"].statistic.startswith("max|Δ| 1.0")
    table = render_table(rows)
    assert "FAIL" in table and table.rstrip().splitlines()[-1].startswith("refcheck PROBLEMS")
    assert "runs/greedy_cfg1.5/idx_Bl[3]" in table      # the failing element is not hidden by collapsing


# ==================================================================================================
# summaries (reduced layout), against a float64 hand computation
# ==================================================================================================
def _hand_sketch(x: np.ndarray, k: int) -> np.ndarray:
    d = x.shape[-1]
    r = np.random.RandomState(20240 + d).standard_normal((d, k)) / math.sqrt(d)
    return np.einsum("bld,dk->blk", x.astype(np.float64), r)


def test_logit_summary_matches_hand_computation():
    x = torch.randn(2, 7, 50, generator=torch.Generator().manual_seed(3)) * 3
    s = logit_summary(x, k=16)
    xn = x.numpy().astype(np.float64)
    lse = np.array([[math.log(math.fsum(math.exp(v) for v in row)) for row in b] for b in xn])
    order = np.argsort(-xn, axis=-1, kind="stable")
    np.testing.assert_allclose(s["lse"].numpy(), lse, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(s["top5_idx"].numpy(), order[..., :5])
    assert s["top5_idx"].dtype == torch.int16
    np.testing.assert_array_equal(s["top6_val"].numpy(), np.take_along_axis(xn, order[..., :6], -1).astype(np.float32))
    np.testing.assert_allclose(s["sketch"].numpy(), _hand_sketch(xn, 16), rtol=1e-6, atol=1e-6)
    assert s["sketch"].dtype == torch.float32


def test_hidden_summary_matches_hand_computation():
    x = torch.randn(1, 5, 24, generator=torch.Generator().manual_seed(4))
    np.testing.assert_allclose(hidden_summary(x, k=8)["sketch"].numpy(), _hand_sketch(x.numpy(), 8),
                               rtol=1e-6, atol=1e-6)


# ==================================================================================================
# tolerance rules on tiny synthetic reference files
# ==================================================================================================
def _no_load(name):
    raise AssertionError(f"unexpected load of {name}")


def test_reduced_layout_positions_summaries_and_derived():
    full = torch.randn(1, 6, 40, generator=torch.Generator().manual_seed(5))
    raw = torch.linspace(-1.5, 1.5, 12).view(1, 1, 3, 4)
    positions = torch.tensor([0, 3, 5])
    ref = {"logits": full[:, positions].clone(), "logits_summary": logit_summary(full, k=16),
           "decoded_raw": raw.clone(),
           "reduction": {"positions": positions, "L": 6, "derived": {"decoded_img": "clamp(decoded_raw, -1, 1)"}}}
    ours = {"logits": full.clone(), "decoded_raw": raw.clone(), "decoded_img": raw.clamp(-1, 1)}
    rows = compare_file("ref_var_teacher_forced.pth", ref, ours, _no_load)
    assert {r.path for r in rows} == {"logits", "logits_summary/lse", "logits_summary/top5_idx",
                                      "logits_summary/top6_val", "logits_summary/sketch", "decoded_raw", "decoded_img"}
    assert not has_problems(rows)
    assert "rebuilt" in _by_path(rows)["ref_var_teacher_forced.pth:decoded_img"].note

    ours["logits"] = full.clone()
    ours["logits"][0, 2] += 1e-3            # position 2 is not stored: only the summaries can see it
    failing = _failing(compare_file("ref_var_teacher_forced.pth", ref, ours, _no_load))
    assert "ref_var_teacher_forced.pth:logits" not in failing
    assert "ref_var_teacher_forced.pth:logits_summary/sketch" in failing


def test_top5_near_ties_may_swap():
    vals = torch.tensor([[[9.0, 8.0, 8.0001, 5.0, 4.0, 3.0]]])  # ranks 1 and 2 are a near tie
    ref = {"s_summary": {"top5_idx": torch.tensor([[[0, 1, 2, 3, 4]]], dtype=torch.int16), "top6_val": vals}}
    tie_swap = {"s_summary": {"top5_idx": torch.tensor([[[0, 2, 1, 3, 4]]], dtype=torch.int16), "top6_val": vals}}
    real_swap = {"s_summary": {"top5_idx": torch.tensor([[[0, 1, 2, 4, 3]]], dtype=torch.int16), "top6_val": vals}}
    assert not has_problems(compare_file("f.pth", ref, tie_swap, _no_load))
    assert _failing(compare_file("f.pth", ref, real_swap, _no_load)) == {"f.pth:s_summary/top5_idx"}


def test_vq_tokens_may_differ_only_where_the_reference_gap_is_tiny():
    ref = {"idx_Bl": [torch.tensor([[1, 2]])], "nn_dist_gap": [torch.tensor([[5e-5, 0.3]])]}
    assert not has_problems(compare_file("ref_vqvae.pth", ref, {"idx_Bl": [torch.tensor([[7, 2]])]}, _no_load))
    assert _failing(compare_file("ref_vqvae.pth", ref, {"idx_Bl": [torch.tensor([[1, 7]])]}, _no_load)) == {
        "ref_vqvae.pth:idx_Bl[0]"}


def test_run_rules_cfg_scaled_atol_n_kept_quota_and_more_smooth():
    def run(kwargs, logits, n_kept, idx):
        return {"runs": {"r": {"kwargs": kwargs, "cfg_logits": logits, "n_kept": n_kept, "idx_Bl": idx}}}

    logits, n_kept = torch.zeros(1, 4, 3), torch.full((1, 200), 7, dtype=torch.int16)
    idx = [torch.tensor([[s]]) for s in range(7)]
    ref = run({"cfg": 4.0, "top_k": 900, "more_smooth": False}, logits, n_kept, idx)
    ok = run(dict(ref["runs"]["r"]["kwargs"]), logits + 8e-4, n_kept.clone().index_fill_(1, torch.tensor([0, 1]), 1),
             list(idx))                          # 8e-4 < 1e-4·(1+2·4); 2 of 200 n_kept differ (1%)
    assert not has_problems(compare_file("ref_inference.pth", ref, ok, _no_load))
    too_far = run(ok["runs"]["r"]["kwargs"], logits + 1e-3, n_kept.clone().index_fill_(1, torch.tensor([0, 1, 2]), 1),
                  list(idx))
    assert _failing(compare_file("ref_inference.pth", ref, too_far, _no_load)) == {
        "ref_inference.pth:runs/r/cfg_logits", "ref_inference.pth:runs/r/n_kept"}

    smooth = run({"cfg": 4.0, "top_k": 900, "more_smooth": True}, logits, n_kept, idx)
    drift = [t + 1 if s >= 5 else t for s, t in enumerate(idx)]
    rows = compare_file("ref_inference.pth", smooth, run(smooth["runs"]["r"]["kwargs"], logits + 1, n_kept, drift),
                        _no_load)
    assert not has_problems(rows)                   # chaotic: later scales and all floats are INFO
    assert [r.verdict for r in collapse_rows(rows) if "idx_Bl" in r.path] == ["PASS", "INFO"]
    early = [t + 1 if s == 1 else t for s, t in enumerate(idx)]
    assert _failing(compare_file("ref_inference.pth", smooth, run(smooth["runs"]["r"]["kwargs"], logits, n_kept, early),
                                 _no_load)) == {"ref_inference.pth:runs/r/idx_Bl[1]"}


def test_missing_keys_optional_or_required():
    ref = {"images": torch.zeros(1), "nn_dist_gap": [torch.ones(1, 1)], "encoder_out": torch.zeros(2)}
    rows = _by_path(compare_file("ref_vqvae.pth", ref, {}, _no_load))
    assert rows["ref_vqvae.pth:images"].verdict == "INFO"
    assert rows["ref_vqvae.pth:nn_dist_gap"].verdict == "INFO"
    assert rows["ref_vqvae.pth:encoder_out"].verdict == "MISSING"


def test_collapsed_table_reports_the_worst_element():
    ref = {"next_inputs": [torch.zeros(1, 2) for _ in range(4)]}
    ours = {"next_inputs": [torch.zeros(1, 2), torch.full((1, 2), 3e-6), torch.full((1, 2), 1e-6), torch.zeros(1, 2)]}
    rows = collapse_rows(compare_file("ref_next_ar_inputs.pth", ref, ours, _no_load))
    assert len(rows) == 1 and rows[0].path == "next_inputs[0..3]" and rows[0].verdict == "PASS"
    assert "3.00e-06" in rows[0].statistic and "worst [1]" in rows[0].statistic


def test_run_refcheck_reports_an_incomplete_set(tmp_path):
    from lsrs.verify.refcheck import run_refcheck
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_refcheck(tmp_path / "nowhere")
    (tmp_path / "meta.json").write_text(json.dumps({"depth": 4, "files": {"ref_vqvae.pth": {"bytes": 1}}}))
    with pytest.raises(FileNotFoundError, match="missing: .*ref_vqvae.pth"):
        run_refcheck(tmp_path)
