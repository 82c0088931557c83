"""Promises survive faults: a worker killed in the middle of placing a callback loses nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from datetime import timedelta

from conftest import worker_env
from sqlalchemy import update
from test_callbacks import callback_for, waiting_callback_and_ana

from directo.core.models import Callback, utcnow
from routing import agents as admin
from routing.callback_jobs import sweep


def kill_worker(worker: subprocess.Popen) -> None:
    """SIGKILL the worker and its work-horse: RQ starts each horse in a session of its own, out of the group. The
    worker goes first, so that it cannot see its horse die and schedule the job's retry: both die as in a crash."""
    horses = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()
    os.killpg(worker.pid, signal.SIGKILL)
    for horse in horses:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(horse), signal.SIGKILL)
    worker.wait(timeout=10)


def test_worker_killed_while_placing_a_callback_loses_nothing_and_rings_once(callcenter) -> None:
    cc = callcenter
    waiting_callback_and_ana(cc)
    cc.standin.faults.delay("Calls", 3.0)  # Twilio is slow: the job is inside the REST request when it dies
    worker = subprocess.Popen([sys.executable, "-m", "directo.cli", "worker"], env=worker_env(cc.services.config),
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        admin.set_status(cc.services, "ana", "available")
        cc.until(lambda: cc.standin.faults.delays_left("Calls") == 0, jobs=False, timeout=30)
    finally:
        kill_worker(worker)  # mid-job: the horse is inside the REST request
    assert callback_for(cc.services).current_call_sid is None, "the job never learnt its call's SID"
    # Twilio still places the call it was asked for, seconds later: long before a callback counts as stalled.
    cc.standin.network.wait_until(lambda net: net.legs_to("client:ana"), timeout=15)
    with cc.services.db.session() as session:  # time passes: the callback has stalled
        session.execute(update(Callback).values(due_at=utcnow() - timedelta(minutes=2)))
    cc.services.queue.enqueue(sweep)  # what the next worker's sweep does
    cc.until(lambda: callback_for(cc.services).state == "done", timeout=40)
    callback = callback_for(cc.services)
    assert callback.close_reason.startswith("kept")
    assert len(cc.standin.network.legs_to("client:ana")) == 1, "the dead worker's call was adopted, not repeated"


def test_a_callback_whose_job_was_lost_before_dialling_is_placed_again(callcenter) -> None:
    cc = callcenter
    waiting_callback_and_ana(cc)
    admin.set_status(cc.services, "ana", "available")
    cc.services.queue.empty()  # Redis lost the job (a flush, a restart): the database still has the promise
    with cc.services.db.session() as session:
        session.execute(update(Callback).values(due_at=utcnow() - timedelta(minutes=2)))
    cc.services.queue.enqueue(sweep)
    cc.until(lambda: callback_for(cc.services).state == "done", timeout=40)
    assert len(cc.standin.network.legs_to("client:ana")) == 1
