"""The project's user-facing error types.

A ``SiamTrackError`` message names the subject (file, argument), what was wrong, what was expected and
the next action. The CLI prints it without a traceback; anything else is a bug and keeps its traceback.
"""


class SiamTrackError(Exception):
    """Base of every error caused by user input or environment, not by a bug."""


class InputError(SiamTrackError):
    """A frame, box, path or argument that cannot be used."""


class ContractError(SiamTrackError):
    """An artifact (ONNX, engine, checkpoint) that does not match what this stage expects."""


class CheckpointError(SiamTrackError):
    """A checkpoint that does not load into the configured model."""


class BackendUnavailable(SiamTrackError):
    """A backend whose library or hardware is missing (e.g. TensorRT without a GPU)."""


def run_main(main, prog: str, argv: list[str] | None = None) -> int:
    """Run a CLI entry point the same way whether called as ``siamtrack X`` or ``python -m module``.

    A SiamTrackError is a user error: print ``prog: error: message`` (the message says what to do) and
    return 1, with no traceback. Anything else is a bug and keeps its traceback.
    """
    import sys

    try:
        return int(main(argv) or 0)
    except SiamTrackError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
