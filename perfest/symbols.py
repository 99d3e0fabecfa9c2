"""Sizes as symbols: the formulas ops are written in, printed for people, expanded for the plan.

An `Expr` is a sum of products of symbols and numbers, kept as it was written, so that a
formula prints as the math reads ("2·b·s·h·i") and, with every value put in, as the arithmetic
("2·8·512·4096·11008"). A `Sym` either has a value (a model size: h = 4096, or a per-device
width under tensor parallelism: n_h = 32 / 4 = 8) or is free (a workload size: b, s, t,
s_logits), and `poly()` expands an expression into a polynomial over the free symbols with
every other symbol replaced by its value. The compiled plan (perfest.plan) evaluates those
polynomials, so the numbers and the printed formulas have one source: the op definitions.

The free symbols of a forward pass:
    b         batch (sequences)
    s         query length: tokens each sequence adds in this pass
    t         context length: keys each new token attends to (t ≥ s)
    s_logits  positions per sequence that reach the LM head (1 in serving, s for training)
    s_enc     encoder tokens per sequence that a decoder's cross-attention reads (an
              encoder-decoder, perfest.layers.cross_attention; 0 elsewhere)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from math import prod

#: A product of free symbols, names sorted (a power repeats its name); () is the constant 1.
Monomial = tuple[str, ...]
#: A polynomial over the free symbols: monomial → coefficient.
Poly = dict[Monomial, float]


class Expr:
    """Base of the expression nodes; `+` and `*` build new expressions (numbers allowed)."""

    __slots__ = ()

    def __add__(self, other: Expr | float) -> Expr:
        return add(self, other)

    def __radd__(self, other: Expr | float) -> Expr:
        return add(other, self)

    def __mul__(self, other: Expr | float) -> Expr:
        return mul(self, other)

    def __rmul__(self, other: Expr | float) -> Expr:
        return mul(other, self)

    def poly(self) -> Poly:
        raise NotImplementedError

    def value(self, env: Mapping[str, float] | None = None) -> float:
        """The number, free symbols taken from `env`."""
        raise NotImplementedError

    def text(self, env: Mapping[str, float] | None = None) -> str:
        """The formula in symbols; with `env`, every symbol replaced by its value."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.text()

    def symbols(self) -> dict[str, Expr]:
        """The named sizes in this expression (Syms and derived symbols), by name."""
        found: dict[str, Expr] = {}
        stack: list[Expr] = [self]
        while stack:
            node = stack.pop()
            if isinstance(node, (Sym, Derived)):
                found.setdefault(node.name, node)
            elif isinstance(node, Add):
                stack.extend(node.terms)
            elif isinstance(node, Mul):
                stack.extend(node.factors)
        return found


@dataclass(frozen=True, slots=True)
class Num(Expr):
    v: float

    def poly(self) -> Poly:
        return {(): self.v} if self.v else {}

    def value(self, env: Mapping[str, float] | None = None) -> float:
        return self.v

    def text(self, env: Mapping[str, float] | None = None) -> str:
        return _number(self.v)


@dataclass(frozen=True, slots=True)
class Sym(Expr):
    """A named size; `v` is None for a free (workload) symbol."""

    name: str
    v: float | None = None

    def poly(self) -> Poly:
        if self.v is None:
            return {(self.name,): 1}
        return {(): self.v} if self.v else {}

    def value(self, env: Mapping[str, float] | None = None) -> float:
        if self.v is not None:
            return self.v
        if env is None or self.name not in env:
            raise KeyError(f"free symbol {self.name} has no value")
        return env[self.name]

    def text(self, env: Mapping[str, float] | None = None) -> str:
        if env is None:
            return self.name
        return _number(self.value(env))


@dataclass(frozen=True, slots=True)
class Add(Expr):
    terms: tuple[Expr, ...]

    def poly(self) -> Poly:
        out: Poly = {}
        for term in self.terms:
            for mono, c in term.poly().items():
                out[mono] = out.get(mono, 0) + c
        return {mono: c for mono, c in out.items() if c}

    def value(self, env: Mapping[str, float] | None = None) -> float:
        return sum(term.value(env) for term in self.terms)

    def text(self, env: Mapping[str, float] | None = None) -> str:
        return " + ".join(term.text(env) for term in self.terms)


@dataclass(frozen=True, slots=True)
class Mul(Expr):
    factors: tuple[Expr, ...]

    def poly(self) -> Poly:
        out: Poly = {(): 1}
        for factor in self.factors:
            nxt: Poly = {}
            for m1, c1 in out.items():
                for m2, c2 in factor.poly().items():
                    mono = tuple(sorted(m1 + m2))
                    nxt[mono] = nxt.get(mono, 0) + c1 * c2
            out = nxt
        return {mono: c for mono, c in out.items() if c}

    def value(self, env: Mapping[str, float] | None = None) -> float:
        return prod(factor.value(env) for factor in self.factors)

    def text(self, env: Mapping[str, float] | None = None) -> str:
        parts = []
        for factor in self.factors:
            piece = factor.text(env)
            parts.append(f"({piece})" if isinstance(factor, Add) else piece)
        return "·".join(parts)


@dataclass(frozen=True, slots=True)
class Derived(Expr):
    """A size computed at each point from the free symbols b, s, t, s_logits (`fn(b, s, t,
    s_logits)`), not a polynomial in them: min(t, window), experts touched. Free for the
    algebra: its value comes from `env` (perfest.plan puts it there), or from `fn` when `env`
    holds the four free symbols only. `formula` says how it is computed, for people."""

    name: str
    fn: Callable[[float, float, float, float], float] = field(compare=False, repr=False)
    formula: str = field(default="", compare=False)

    def poly(self) -> Poly:
        return {(self.name,): 1}

    def value(self, env: Mapping[str, float] | None = None) -> float:
        if env is not None and self.name in env:
            return env[self.name]
        if env is None:
            raise KeyError(f"derived symbol {self.name} has no value")
        return self.fn(*(env[name] for name in FREE))

    def text(self, env: Mapping[str, float] | None = None) -> str:
        if env is None:
            return self.name
        return _number(self.value(env))


def derived_in(exprs: Iterable[Expr]) -> tuple[Derived, ...]:
    """The distinct derived symbols in `exprs`, in order of first appearance."""
    found: dict[str, Derived] = {}
    stack = list(exprs)
    while stack:
        node = stack.pop()
        if isinstance(node, Derived):
            found.setdefault(node.name, node)
        elif isinstance(node, Add):
            stack.extend(node.terms)
        elif isinstance(node, Mul):
            stack.extend(node.factors)
    return tuple(found.values())


ZERO = Num(0)
ONE = Num(1)


def expr(x: Expr | float) -> Expr:
    return x if isinstance(x, Expr) else Num(x)


def add(*items: Expr | float) -> Expr:
    """A sum, flattened, without zeros; a single term is returned as itself."""
    terms: list[Expr] = []
    for item in map(expr, items):
        if isinstance(item, Add):
            terms.extend(item.terms)
        elif not (isinstance(item, Num) and item.v == 0):
            terms.append(item)
    if not terms:
        return ZERO
    return terms[0] if len(terms) == 1 else Add(tuple(terms))


def mul(*items: Expr | float) -> Expr:
    """A product, flattened, numbers gathered in front; 0 if any factor is 0."""
    number: float = 1
    factors: list[Expr] = []
    for item in map(expr, items):
        if isinstance(item, Num):
            number *= item.v
        elif isinstance(item, Mul):
            for inner in item.factors:
                if isinstance(inner, Num):
                    number *= inner.v
                else:
                    factors.append(inner)
        else:
            factors.append(item)
    if number == 0:
        return ZERO
    if number != 1 or not factors:
        factors.insert(0, Num(number))
    return factors[0] if len(factors) == 1 else Mul(tuple(factors))


def total(items) -> Expr:
    """Σ of expressions (ZERO for none)."""
    return add(*items)


def _number(v: float) -> str:
    if float(v).is_integer():
        return str(int(v))
    return f"{v:g}"


# The free symbols of a pass (see the module docstring).
b = Sym("b")
s = Sym("s")
t = Sym("t")
s_logits = Sym("s_logits")
s_enc = Sym("s_enc")
#: Their names, in the order a Derived symbol's function takes them.
FREE = ("b", "s", "t", "s_logits")

#: What each symbol means (explain's symbol table; the layer builders' per-device sizes).
MEANINGS = {
    "b": "batch (sequences)",
    "s": "query length: tokens each sequence adds in this pass",
    "t": "context length: keys each new token attends to",
    "s_logits": "positions per sequence that reach the LM head",
    "s_enc": "encoder tokens per sequence a decoder's cross-attention reads",
    "h": "hidden size",
    "d": "head dimension",
    "n_h": "query heads (per device)",
    "n_kv": "key/value heads (per device)",
    "i": "MLP intermediate size (per device)",
    "V": "vocabulary rows (per device)",
    "V_full": "vocabulary (all devices)",
    "d_rope": "dimensions per head that RoPE rotates",
    "t_w": "keys a windowed layer attends to: min(t, window)",
    "E": "routed experts per MoE layer",
    "k": "experts each token is routed to (top-k)",
    "E_l": "routed experts this device holds",
    "i_e": "each routed expert's intermediate size (per device)",
    "i_shared": "the shared experts' intermediate size (per device)",
    "e_t": "experts this device touches per MoE layer (expected, uniform routing)",
    "m_e": "rows each touched expert's product gets",
    "c": "latent (compressed) key/value width (MLA)",
    "c_q": "latent query width (MLA)",
    "d_n": "per-head query/key dimensions without RoPE (MLA)",
    "d_r": "per-head dimensions RoPE rotates (MLA, shared key)",
    "d_v": "per-head value dimension (MLA)",
}
