"""dnalm beside its peers on the same machine: tokens/s and ratios, measured interleaved in one process.

Pairs (same configuration, same weights):

- ``mamba2``: one Mamba2 mixer, d_model 256 (expand 2, headdim 64, d_state 64, chunk 256), dnalm's
  :class:`~dnalm.models.mamba2.Mamba2` against Hugging Face transformers' ``Mamba2Mixer`` on its pure-PyTorch path
  (the state dict is copied one to one; the script checks that the outputs agree).
- ``hyena``: a HyenaDNA model d_model 256 x 4 layers (``hyenadna-small``'s shape), dnalm's LM against the published
  standalone HyenaDNA model (the test-only re-expression in ``tests/reference/hyenadna_standalone.py``), with the
  weights carried over by :func:`dnalm.models.import_hyenadna` (the logits are checked to agree).
- ``pretrain``: one whole pretraining step (forward, next-token loss, backward, AdamW) of ``hybridna-tiny`` and
  ``hyenadna-small``: tokens/s, FLOPs per token counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls,
  convolutions, attention; FFTs and element-wise work are not counted), and the utilisation of the float32 GEMM
  peak that the script measures on the same machine (best of a few 2048^3 matmuls), by wall-clock time and by process
  CPU time (the steadier one with one thread on a shared machine).

Every timed call of a pair runs alternately (dnalm, peer, dnalm, peer, ...; the order flips each repetition), so a
machine shared with other work slows both sides alike; the median of ``--reps`` is reported: tokens/s and the
ratio peer time / dnalm time from wall-clock time, and the same ratio from process CPU time ("cpu ratio", the
steadier one with one thread on a loaded machine; with two threads it also counts threads spinning). "rel diff" is
the largest difference of the two sides' outputs relative to the largest output. ``--profile`` prints
torch.profiler's top operators of both sides of each pair instead of timing, side by side (the longest of
``--hyena-lengths`` is profiled); for ``hyena`` also the share of the peer's time in the operators both sides run
alike (GEMMs, GELU, LayerNorm) and the bound on the ratio that it implies; for ``pretrain``, the top operators of one
``hybridna-tiny`` step.

    pip install -e '.[bench]'
    python benchmarks/peers.py                                   # everything, 1 and 2 threads
    python benchmarks/peers.py --pairs mamba2 --threads 1 --reps 5
    python benchmarks/peers.py --pairs hyena --threads 1 --hyena-lengths --hyena-train-lengths 8192  # one row
    python benchmarks/peers.py --pairs hyena --profile
    python benchmarks/peers.py --pairs hyena --profile --profile-what backward --hyena-lengths 8192 --threads 1
    python benchmarks/peers.py --pairs pretrain --profile --threads 1
    python benchmarks/peers.py --device cuda --pairs mamba2 hyena pretrain --threads 1   # on a GPU
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

REF_PATH = Path(__file__).resolve().parents[1] / "tests" / "reference" / "hyenadna_standalone.py"

FWD, FWDBWD = "forward", "forward+backward"


# ---------------------------------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict, reps: int, device: torch.device) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and process-CPU seconds per call of each function, calls alternating between them (after one
    warm-up call each). With one thread on a shared machine the CPU time is the steadier measure: it leaves out the
    time the process waited for a core."""
    names = list(fns)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        fns[n]()
    for r in range(reps):
        for n in names if r % 2 == 0 else names[::-1]:
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fns[n]()
            _sync(device)
            wall[n].append(time.perf_counter() - t0)
            cpu[n].append(time.process_time() - c0)
    return ({n: statistics.median(t) for n, t in wall.items()}, {n: statistics.median(t) for n, t in cpu.items()})


def _zero_grad(module: nn.Module) -> None:
    for p in module.parameters():
        p.grad = None


def _call(model: nn.Module, x: torch.Tensor, what: str, logits_of=lambda out: out):
    """One forward (no autograd) or forward + backward of a squared-mean loss."""
    if what == FWD:
        def run():
            with torch.no_grad():
                model(x)
    else:
        def run():
            _zero_grad(model)
            logits_of(model(x)).float().square().mean().backward()
    return run


def _no_dropout(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model


# ---------------------------------------------------------------------------------------------------- pairs
def mamba2_pair(device: torch.device, dtype: torch.dtype):
    """dnalm's Mamba2 mixer and HF's Mamba2Mixer with one state dict."""
    from transformers import Mamba2Config as HFConfig
    from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer

    from dnalm.models.mamba2 import Mamba2, Mamba2Config

    torch.manual_seed(0)
    ours = Mamba2(256, 0, Mamba2Config(d_state=64, headdim=64, chunk_size=256, expand=2, ngroups=1))
    hf_cfg = HFConfig(hidden_size=256, expand=2, num_heads=8, head_dim=64, state_size=64, n_groups=1, conv_kernel=4,
                      chunk_size=256, use_conv_bias=True, use_bias=False, layer_norm_epsilon=1e-5,
                      num_hidden_layers=1)
    peer = Mamba2Mixer(hf_cfg, 0)
    peer.load_state_dict(ours.state_dict(), strict=True)
    ours, peer = ours.to(device, dtype), peer.to(device, dtype)
    return ours, peer, lambda out: out


def hyena_pair(device: torch.device, dtype: torch.dtype, max_length: int):
    """dnalm's HyenaDNA LM and the published standalone model, weights shared through the importer."""
    import warnings

    from dnalm.models import import_hyenadna

    spec = importlib.util.spec_from_file_location("hyenadna_reference_standalone", REF_PATH)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    peer = ref.build_reference(d_model=256, n_layer=4, d_inner=1024, vocab_size=12, l_max=max_length,
                               filter_order=64, emb_dim=5, shift=0.05, w=10, seed=0)
    with torch.no_grad():  # HyenaDNA's own init scale (build_reference's N(0, 0.3) saturates a d_model 256 model)
        for pname, p in peer.named_parameters():
            if p.dim() == 2 and "freq" not in pname:
                p.normal_(0, 0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = import_hyenadna(peer.state_dict())
    ours, peer = _no_dropout(ours).to(device, dtype), _no_dropout(peer).to(device, dtype)
    return ours, peer, lambda out: getattr(out, "logits", out)


def _agreement(ours, peer, x, logits_of) -> float:
    with torch.no_grad():
        a, b = logits_of(ours(x)).float(), logits_of(peer(x)).float()
    n = min(a.shape[-1], b.shape[-1])
    return float((a[..., :n] - b[..., :n]).abs().max() / b[..., :n].abs().max().clamp_min(1e-30))


def run_pair(name: str, lengths: dict, threads: list[int], reps: int, device, dtype) -> list[dict]:
    rows = []
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        for what, Ls in lengths.items():
            for L in Ls:
                if name == "mamba2":
                    ours, peer, logits_of = mamba2_pair(device, dtype)
                    x = torch.randn(1, L, 256, generator=torch.Generator().manual_seed(1)).to(device, dtype)
                else:
                    ours, peer, logits_of = hyena_pair(device, dtype, max(Ls) + 2)
                    x = torch.randint(7, 11, (1, L), generator=torch.Generator().manual_seed(1)).to(device)
                ours.train(what == FWDBWD)
                peer.train(what == FWDBWD)
                err = _agreement(ours, peer, x if L <= 8192 else x[:, :8192], logits_of)
                t, c = interleaved({"dnalm": _call(ours, x, what, logits_of),
                                    "peer": _call(peer, x, what, logits_of)}, reps, device)
                row = {"pair": name, "what": what, "L": L, "threads": n_threads, "dnalm_tok_s": L / t["dnalm"],
                       "peer_tok_s": L / t["peer"], "ratio": t["peer"] / t["dnalm"],
                       "cpu_ratio": c["peer"] / c["dnalm"], "rel_diff": err}
                rows.append(row)
                print(f"{name:<7} {what:<17} {L:>7} {n_threads:>3} {row['dnalm_tok_s']:>12,.0f} "
                      f"{row['peer_tok_s']:>12,.0f} {row['ratio']:>7.2f}x {row['cpu_ratio']:>9.2f}x {err:>9.1e}",
                      flush=True)
                del ours, peer
    return rows


# ---------------------------------------------------------------------------------------------------- pretraining
def gemm_peak(device, dtype, n: int = 2048, tries: int = 5) -> tuple[float, float]:
    """Best FLOP/s of an n x n x n matmul (the machine's measured GEMM peak for this thread count), by wall-clock
    time and by process CPU time (the latter leaves out waiting for a core on a shared machine)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best, best_cpu = float("inf"), float("inf")
    for _ in range(tries):
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        a @ b
        _sync(device)
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    return 2 * n**3 / best, 2 * n**3 / best_cpu


def pretrain_rows(presets: list[str], length: int, batch: int, threads: list[int], reps: int, device,
                  dtype) -> list[dict]:
    from torch.utils.flop_counter import FlopCounterMode

    from dnalm.models import build_model

    rows = []
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        peak, peak_cpu = gemm_peak(device, dtype)
        for preset in presets:
            torch.manual_seed(0)
            model = build_model(preset).to(device, dtype).train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            x = torch.randint(7, 11, (batch, length), generator=torch.Generator().manual_seed(2)).to(device)

            def step():
                loss = model(x, labels=x).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            with FlopCounterMode(display=False) as counter:
                model(x, labels=x).loss.backward()
            opt.zero_grad(set_to_none=True)
            flops_tok = counter.get_total_flops() / (batch * length)
            wall, cpu = interleaved({"step": step}, reps, device)
            tok_s, tok_s_cpu = batch * length / wall["step"], batch * length / cpu["step"]
            row = {"preset": preset, "threads": n_threads, "L": length, "batch": batch, "tok_s": tok_s,
                   "flops_per_token": flops_tok, "gemm_peak": peak, "utilisation": flops_tok * tok_s / peak,
                   "gemm_peak_cpu": peak_cpu, "utilisation_cpu": flops_tok * tok_s_cpu / peak_cpu}
            rows.append(row)
            print(f"{preset:<15} {length:>6} x{batch:<3} {n_threads:>3} {tok_s:>10,.0f} {flops_tok / 1e6:>12.1f} "
                  f"{peak / 1e9:>10.1f} {100 * row['utilisation']:>7.1f}% {peak_cpu / 1e9:>10.1f} "
                  f"{100 * row['utilisation_cpu']:>9.1f}%", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------- profile
# Operators doing the same work on both sides of the hyena pair: the block's GEMMs (in_proj, out_proj, fc1, fc2,
# lm_head, forward and backward), the MLP's GELU and the LayerNorms. Whatever else dnalm does, the peer / dnalm ratio
# cannot exceed peer total / dnalm's time in these unless they get faster than the peer's own.
SHARED_OPS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::gelu", "aten::gelu_backward", "aten::native_layer_norm",
              "aten::native_layer_norm_backward")


def _op_times(fns: dict, activities, calls: int = 2) -> dict[str, dict[str, tuple[float, int]]]:
    """Self time (ms) and count of each operator per call of each function, from torch.profiler over ``calls``
    calls each, alternating between the functions (as :func:`interleaved` does) after one warm-up call each."""
    from torch.profiler import profile as tprofile

    cuda = any(a == torch.profiler.ProfilerActivity.CUDA for a in activities)
    sums: dict[str, dict[str, list]] = {n: {} for n in fns}
    for fn in fns.values():
        fn()
    for r in range(calls):
        for n in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            with tprofile(activities=activities) as prof:
                fns[n]()
            for e in prof.key_averages():
                acc = sums[n].setdefault(e.key, [0.0, 0])
                acc[0] += (e.self_device_time_total if cuda else e.self_cpu_time_total) / 1e3
                acc[1] += e.count
    return {n: {k: (v[0] / calls, v[1] // calls) for k, v in ops.items()} for n, ops in sums.items()}


def profile(pairs: list[str], L_mamba: int, L_hyena: int, device, dtype, top: int,
            whats: tuple = (FWD, FWDBWD)) -> None:
    """Top operators of both sides of each pair, side by side (ms per call); for ``hyena`` also the share of the
    time in :data:`SHARED_OPS` and the ratio bound it implies; for ``pretrain`` one ``hybridna-tiny`` step."""
    from torch.profiler import ProfilerActivity

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for name in pairs:
        if name == "mamba2":
            ours, peer, lo = mamba2_pair(device, dtype)
            x = torch.randn(1, L_mamba, 256).to(device, dtype)
        elif name == "hyena":
            ours, peer, lo = hyena_pair(device, dtype, L_hyena + 2)
            x = torch.randint(7, 11, (1, L_hyena)).to(device)
        else:
            _profile_pretrain(activities, device, dtype, top)
            continue
        for what in whats:
            ours.train(what == FWDBWD)
            peer.train(what == FWDBWD)
            times = _op_times({"dnalm": _call(ours, x, what, lo), "peer": _call(peer, x, what, lo)}, activities)
            a, b = times["dnalm"], times["peer"]
            keys = sorted(set(a) | set(b), key=lambda k: -max(a.get(k, (0, 0))[0], b.get(k, (0, 0))[0]))
            tot_a, tot_b = sum(v[0] for v in a.values()), sum(v[0] for v in b.values())
            print(f"\n== {name} {what}, L={x.shape[1]}: self time per call (torch.profiler, 2 calls each, alternating) ==")
            print(f"{'operator':<48} {'dnalm ms':>10} {'calls':>6} {'peer ms':>10} {'calls':>6}  shared")
            for k in keys[:top]:
                ta, tb = a.get(k, (0.0, 0)), b.get(k, (0.0, 0))
                print(f"{k[:48]:<48} {ta[0]:>10.1f} {ta[1]:>6} {tb[0]:>10.1f} {tb[1]:>6}  "
                      f"{'yes' if k in SHARED_OPS else ''}")
            print(f"{'total':<48} {tot_a:>10.1f} {'':>6} {tot_b:>10.1f}")
            if name == "hyena":
                sh_a = sum(a.get(k, (0.0, 0))[0] for k in SHARED_OPS)
                sh_b = sum(b.get(k, (0.0, 0))[0] for k in SHARED_OPS)
                print(f"shared operators: dnalm {sh_a:.1f} ms ({100 * sh_a / tot_a:.0f}%), peer {sh_b:.1f} ms "
                      f"({100 * sh_b / tot_b:.0f}%); profiled ratio {tot_b / tot_a:.2f}x; bound with dnalm's other "
                      f"operators at zero: {tot_b / sh_a:.2f}x; other operators: dnalm {tot_a - sh_a:.1f} ms, "
                      f"peer {tot_b - sh_b:.1f} ms")


def _profile_pretrain(activities, device, dtype, top: int, presets=("hybridna-tiny",), length: int = 1024,
                      batch: int = 4) -> None:
    """Top operators of one whole pretraining step (forward, loss, backward, AdamW) of each preset."""
    from dnalm.models import build_model

    for preset in presets:
        torch.manual_seed(0)
        model = build_model(preset).to(device, dtype).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randint(7, 11, (batch, length), generator=torch.Generator().manual_seed(2)).to(device)

        def step():
            model(x, labels=x).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        t = _op_times({"step": step}, activities)["step"]
        total = sum(v[0] for v in t.values())
        print(f"\n== pretraining step {preset}, {batch} x {length}: self time per step (torch.profiler) ==")
        print(f"{'operator':<48} {'ms':>10} {'calls':>6} {'share':>6}")
        for k in sorted(t, key=lambda k: -t[k][0])[:top]:
            print(f"{k[:48]:<48} {t[k][0]:>10.1f} {t[k][1]:>6} {100 * t[k][0] / total:>5.1f}%")
        print(f"{'total':<48} {total:>10.1f}")


# ---------------------------------------------------------------------------------------------------- main
def _pick(lengths: list[int], i: int) -> int:
    """``lengths[i]`` (the profiled length), the last one if the list is shorter."""
    if not lengths:
        raise SystemExit("--profile needs a length (--mamba-lengths / --hyena-lengths)")
    return lengths[i] if -len(lengths) <= i < len(lengths) else lengths[-1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", nargs="+", default=["mamba2", "hyena", "pretrain"],
                    choices=["mamba2", "hyena", "pretrain"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--reps", type=int, default=3, help="timed calls per side (median reported)")
    ap.add_argument("--mamba-lengths", nargs="*", type=int, default=[1024, 4096, 16384],
                    help="forward lengths (none: skip them)")
    ap.add_argument("--mamba-train-lengths", nargs="*", type=int, default=[1024, 4096],
                    help="forward+backward lengths (none: skip them)")
    ap.add_argument("--hyena-lengths", nargs="*", type=int, default=[1024, 8192, 32768],
                    help="forward lengths (none: skip them)")
    ap.add_argument("--hyena-train-lengths", nargs="*", type=int, default=[1024, 8192],
                    help="forward+backward lengths (none: skip them)")
    ap.add_argument("--pretrain-presets", nargs="+", default=["hybridna-tiny", "hyenadna-small"])
    ap.add_argument("--pretrain-length", type=int, default=1024)
    ap.add_argument("--pretrain-batch", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--profile", action="store_true", help="print torch.profiler's top operators instead")
    ap.add_argument("--top", type=int, default=15, help="operators shown by --profile")
    ap.add_argument("--profile-what", default="both", choices=["both", "forward", "backward"],
                    help="--profile: forward, forward+backward ('backward') or both")
    args = ap.parse_args(argv)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    print(f"# torch {torch.__version__}, {sys.platform}, device {device}, {args.dtype}, median of {args.reps}, "
          f"calls interleaved; command: python benchmarks/peers.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    if args.profile:
        torch.set_num_threads(args.threads[0])
        whats = {"both": (FWD, FWDBWD), "forward": (FWD,), "backward": (FWDBWD,)}[args.profile_what]
        profile(args.pairs, _pick(args.mamba_lengths or args.mamba_train_lengths, 1),
                _pick(args.hyena_lengths or args.hyena_train_lengths, -1),
                device, dtype, args.top, whats)
        return
    if "mamba2" in args.pairs or "hyena" in args.pairs:
        print(f"{'pair':<7} {'what':<17} {'L':>7} {'thr':>3} {'dnalm tok/s':>12} {'peer tok/s':>12} {'ratio':>8} "
              f"{'cpu ratio':>10} {'rel diff':>9}")
    if "mamba2" in args.pairs:
        run_pair("mamba2", {FWD: args.mamba_lengths, FWDBWD: args.mamba_train_lengths}, args.threads, args.reps,
                 device, dtype)
    if "hyena" in args.pairs:
        run_pair("hyena", {FWD: args.hyena_lengths, FWDBWD: args.hyena_train_lengths}, args.threads, args.reps,
                 device, dtype)
    if "pretrain" in args.pairs:
        print(f"\n{'preset':<15} {'L':>6} {'batch':<4} {'thr':>3} {'tok/s':>10} {'MFLOP/tok':>12} {'GEMM GF/s':>10} "
              f"{'util':>8} {'GF/s (cpu)':>10} {'util (cpu)':>10}")
        pretrain_rows(args.pretrain_presets, args.pretrain_length, args.pretrain_batch, args.threads, args.reps,
                      device, dtype)


if __name__ == "__main__":
    main()
