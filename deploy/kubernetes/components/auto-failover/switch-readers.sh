#!/bin/sh
# The reader switch of the automatic failover (`wye promote --auto --exec`): run with sh after
# the roles switched, with WYE_OLD_MASTER, WYE_NEW_MASTER and WYE_PROMOTE_EPOCH set. Exit 0 once
# the readers use WYE_NEW_MASTER; any other exit switches the roles back (journaled rolled_back).
# Replace this placeholder with yours, e.g. point a Service at the new master:
#   kubectl -n search patch service search-read --type=merge \
#     -p "{\"spec\":{\"externalName\":\"$WYE_NEW_MASTER.search.svc\"}}"
echo "switch-readers.sh is the placeholder: no reader switch configured (from $WYE_OLD_MASTER to $WYE_NEW_MASTER)" >&2
exit 1
