"""Property: whatever a backend replies, it is refused or bounded by what was asked."""

from hypothesis import given, settings
from hypothesis import strategies as st

from howhard.errors import BackendError
from howhard.procedures.accounting import check_generation
from howhard.types import Completion, Generation

_FIGURES = st.one_of(
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
)


@st.composite
def _replies(draw: st.DrawFn) -> Generation:
    completions = tuple(
        Completion(
            text=draw(st.one_of(st.text(max_size=5), st.integers())),  # type: ignore[arg-type]
            tokens=draw(_FIGURES),
            logprobs=draw(st.one_of(st.none(), st.lists(st.floats(), max_size=20).map(tuple))),
        )
        for _ in range(draw(st.integers(min_value=0, max_value=6)))
    )
    return Generation(completions=completions, prompt_tokens=draw(_FIGURES))


@settings(max_examples=300, deadline=None)
@given(reply=_replies(), n=st.integers(min_value=1, max_value=4))
def test_any_reply_is_refused_or_bounded_by_what_was_asked(reply: Generation, n: int) -> None:
    try:
        checked = check_generation(reply, n=n, max_tokens=8, prompt_limit=100, model="m")
    except BackendError:
        return
    assert len(checked.generation.completions) <= n
    assert type(checked.prompt_tokens) is int and 0 <= checked.prompt_tokens <= 100
    assert type(checked.completion_tokens) is int
    assert 0 <= checked.completion_tokens <= 8 * n
    for completion in checked.generation.completions:
        assert isinstance(completion.text, str)
        assert type(completion.tokens) is int and 0 <= completion.tokens <= 8
        assert completion.logprobs is None or len(completion.logprobs) <= 8
