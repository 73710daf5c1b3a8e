"""Stop signals: the run checkpoints and leaves interrupted, whatever the previous handler does."""

import os
import signal

import pytest

from scaling.stop import Interrupted, StopFlag


def test_stop_whose_previous_handler_refuses_to_requeue_still_interrupts():
    # submitit's USR2 handler raises once a job has timed out too many times: the run
    # must end interrupted (its checkpoint is on disk), not failed
    def refuses(signum, frame):
        raise RuntimeError("Job not requeued because: timed-out too many times.")

    before = signal.signal(signal.SIGUSR2, refuses)
    try:
        flag = StopFlag()
        flag.install()
        os.kill(os.getpid(), signal.SIGUSR2)
        assert flag.signum == signal.SIGUSR2
        with pytest.raises(Interrupted, match="timed-out too many times") as stopped:
            flag.forward()
        assert stopped.value.signum == signal.SIGUSR2
        assert signal.getsignal(signal.SIGUSR2) is refuses  # handed back
    finally:
        signal.signal(signal.SIGUSR2, before)
