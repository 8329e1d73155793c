"""The child side of the symbolic math check: math-verify in its own process.

Run as a script by :mod:`rlvr.rewards._math_symbolic` (through ``runpy``, so that this
folder, which holds ``math.py``, is not on ``sys.path``); it imports nothing from ``rlvr``, so
it starts in a fresh interpreter without re-running the parent's ``__main__``.

Protocol: one JSON object per line.

- The worker first writes ``{"ready": true}``.
- Request ``{"id": n, "pred": str, "gold": str}`` -> ``{"id": n, "result": bool, "detail": str}``
  (``result`` is ``null`` with an ``error`` detail if math-verify itself raised).
- Request ``{"id": n, "op": "clear"}`` empties the caches -> ``{"id": n, "result": true}``.

math-verify is called with its signal-based timeouts off (``parsing_timeout=None``,
``timeout_seconds=None``); the parent enforces the deadline by killing this process.
The worker exits on end of input and, via a watchdog thread, when its parent goes away.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from dataclasses import replace
from functools import lru_cache
from typing import Any, TextIO

_UPRIGHT_CONSTANT_RE = re.compile(r"\\(?:mathrm|text|textrm|operatorname)\s*\{\s*([ie])\s*\}")
"""``\\mathrm{i}`` / ``\\mathrm{e}``: math-verify's unit stripping would delete them."""

_MEMORY_LIMIT_BYTES = 4 << 30
"""Address-space cap, so one runaway check fails with MemoryError instead of swapping."""


def _limit_memory() -> None:
    """Cap the address space where the platform allows it (best effort)."""
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > _MEMORY_LIMIT_BYTES:
            resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT_BYTES, hard))
    except (ImportError, ValueError, OSError):
        pass


def _watch_parent(parent_pid: int) -> None:
    """Exit when the parent process dies (we get re-parented)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(0)


class _Judge:
    """math-verify's parse + verify, with a cache of parsed answers."""

    def __init__(self) -> None:
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        from latex2sympy2_extended.latex2sympy2 import normalize_latex
        from math_verify import LatexExtractionConfig, parse, verify
        from math_verify.parser import parse_latex_cached

        self._parse, self._verify = parse, verify
        self._normalize_latex, self._parse_latex = normalize_latex, parse_latex_cached
        default = LatexExtractionConfig().normalization_config
        self._boxed_config = replace(default, boxed="last")
        self.parse_answer = lru_cache(maxsize=1024)(self._parse_answer)

    def _parse_answer(self, answer: str) -> list[Any]:
        """Exactly ``math_verify.parse("\\boxed{" + answer + "}")``, minus the regex scan.

        For a ``\\boxed{...}`` string without ``$`` math-verify's extraction lands on its plain
        boxed pattern, normalizes with ``boxed="last"`` and parses the LaTeX; we do those two
        steps directly and return the same ``[expression, normalized string]``. Anything else
        (a parse failure, ``$`` inside) takes the full ``parse``.
        """
        wrapped = "\\boxed{" + answer + "}"
        if "$" not in answer:
            normalized = self._normalize_latex(wrapped, config=self._boxed_config)
            try:
                return [self._parse_latex(normalized), normalized]
            except Exception:
                pass
        return list(self._parse(wrapped, parsing_timeout=None))

    def check(self, pred: str, gold: str) -> tuple[bool, str]:
        """``verify(parse(gold), parse(pred))`` with both boxed the same way.

        Departures from math-verify's defaults: ``allow_set_relation_comp=True`` (so ``x>2``
        matches ``(2,\\infty)``); a second try that reads a free symbol ``i`` as the imaginary
        unit (math-verify parses ``i^2`` as a real symbol squared); an upright
        ``\\mathrm{i}``/``\\mathrm{e}`` read as ``i``/``e`` (math-verify strips it as a unit,
        so ``2\\mathrm{i}`` matched ``2``); rational functions decided exactly by ``cancel``.
        """
        gold_parsed = self.parse_answer(_UPRIGHT_CONSTANT_RE.sub(r"\1", gold))
        pred_parsed = self.parse_answer(_UPRIGHT_CONSTANT_RE.sub(r"\1", pred))
        identity = _rational_identity(gold_parsed, pred_parsed)
        if identity is not None:
            return identity, f"rational functions {'equal' if identity else 'differ'} (cancel)"
        if self._verify_lists(gold_parsed, pred_parsed):
            return True, "math-verify: equal"
        gold_i, pred_i = _imaginary_unit(gold_parsed), _imaginary_unit(pred_parsed)
        if (gold_i is not gold_parsed or pred_i is not pred_parsed) and self._verify_lists(
            gold_i, pred_i
        ):
            return True, "math-verify: equal with i as the imaginary unit"
        return False, "math-verify: not equal"

    def _verify_lists(self, gold: list[Any], pred: list[Any]) -> bool:
        return bool(self._verify(gold, pred, allow_set_relation_comp=True, timeout_seconds=None))

    def clear(self) -> None:
        """Empty the answer caches (for benchmarks that measure cold checks)."""
        self.parse_answer.cache_clear()
        self._parse_latex.cache_clear()


def _plain_rational(expr: Any) -> bool:
    """Whether ``expr`` is a rational function with rational coefficients and real symbols.

    Only Symbols (not ``i``) and exact rationals as atoms: no floats, percentages, constants
    such as pi, functions or roots.
    """
    import sympy

    if not isinstance(expr, sympy.Expr) or isinstance(expr, sympy.Symbol):
        return False
    if expr.has(sympy.UnevaluatedExpr):
        return False
    for atom in expr.atoms():
        if isinstance(atom, sympy.Symbol):
            if atom.name == "i":
                return False
        elif not isinstance(atom, sympy.Rational):
            return False
    return bool(expr.is_rational_function())


def _rational_identity(gold: list[Any], pred: list[Any]) -> bool | None:
    """Decide two rational functions exactly with ``cancel``; ``None`` if not that case.

    For such expressions math-verify would come to the same verdict through ``simplify``, which
    takes ten times as long. Constants (no free symbols) are left to math-verify.
    """
    import sympy

    if not gold or not pred:
        return None
    g, p = gold[0], pred[0]
    if not (_plain_rational(g) and _plain_rational(p)):
        return None
    if not (g.free_symbols or p.free_symbols):
        return None
    if g == p:
        return True
    return bool(sympy.cancel(sympy.together(g - p)) == 0)


def _imaginary_unit(parsed: list[Any]) -> list[Any]:
    """``parsed`` with every free symbol named ``i`` replaced by ``sympy.I`` (same list if none)."""
    import sympy

    out, changed = [], False
    for item in parsed:
        if isinstance(item, sympy.Basic):
            symbols = {s: sympy.I for s in item.free_symbols if getattr(s, "name", "") == "i"}
            if symbols:
                item, changed = item.xreplace(symbols), True
        out.append(item)
    return out if changed else parsed


def _answer(request: dict[str, Any], judge: _Judge) -> dict[str, Any]:
    """Serve one request; errors become ``result: null`` with the exception named."""
    reply: dict[str, Any] = {"id": request.get("id")}
    try:
        if request.get("op") == "clear":
            judge.clear()
            reply.update(result=True, detail="cleared")
        else:
            ok, detail = judge.check(str(request["pred"]), str(request["gold"]))
            reply.update(result=ok, detail=detail)
    except Exception as exc:  # math-verify is meant to catch its own; report anything left
        reply.update(result=None, error=f"{type(exc).__name__}: {exc}"[:300])
    return reply


def serve(inp: TextIO, out: TextIO) -> None:
    """Answer requests from ``inp`` until end of input."""
    judge = _Judge()
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in inp:
        if not line.strip():
            continue
        reply = _answer(json.loads(line), judge)
        out.write(json.dumps(reply, ensure_ascii=True) + "\n")
        out.flush()


def main() -> None:
    """Entry point: keep the protocol on a private copy of stdout, send stray prints to stderr."""
    _limit_memory()
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with open(sys.stdin.fileno(), encoding="utf-8", closefd=False) as requests, protocol:
        serve(requests, protocol)


if __name__ == "__main__":
    main()
