"""The runtime of examples/testing/index.flow.md, with a bug planted in its retries."""

from wavecrest.core import register_runtime


@register_runtime("transform:index", replace=True)
def index(ctx):
    # The bug: a retry that starts from the cached copy reads a half-written index file.
    if ctx.attempt == 2 and ctx.input == "cached":
        raise ValueError("half-written index file")
    return f"index of {ctx.input}"
