"""The exit statuses of the scripts, one per kind of expected failure.

=====  ===================================================================================
  2    bad input: config, overrides, data, checkpoint (``error: ...``), before any work
  3    training diverged: too many non-finite steps, or NaN weights refused (``error: ...``)
 75    pre-empted by SIGTERM/SIGUSR1 after saving a checkpoint (``preempted: ...``); 75 is
       EX_TEMPFAIL, "try again": requeue the job with ``resume=auto``
=====  ===================================================================================

Kept free of heavy imports: the override check (``tasks/overrides.py``) exits with the
bad-input status before torch or Lightning is loaded.
"""

EXIT_USER_ERROR, EXIT_DIVERGED, EXIT_PREEMPTED = 2, 3, 75
