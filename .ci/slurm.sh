# Start the single-node CI Slurm cluster and tell the tests to use it.
#
#   source .ci/slurm.sh      # from any folder; then: pytest -m slurm tests/launchers
#
# Runs ../shared/slurm/start_slurm.sh (relative to the repository root: one
# node, partition `debug`, accounting so that sacct works; 30-50 s the first
# time, about 4 s once installed) and exports:
#   XPM_TRAIN_SLURM=1                  Slurm tests must run (fail, not skip, without Slurm)
#   XPM_TRAIN_SLURM_PARTITION=debug    partition used by the Slurm tests
# Executed instead of sourced (bash .ci/slurm.sh), it only starts the cluster.

_xpm_train_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if bash "$_xpm_train_root/../shared/slurm/start_slurm.sh"; then
  export XPM_TRAIN_SLURM=1
  export XPM_TRAIN_SLURM_PARTITION=debug
  unset _xpm_train_root
else
  echo ".ci/slurm.sh: could not start Slurm (see the log above)" >&2
  unset _xpm_train_root
  return 1 2>/dev/null || exit 1
fi
