#!/bin/bash
# check_tcp.sh HOST PORT: a tiny plugin on the Nagios plugin API, for the demo where Debian's
# monitoring-plugins-basic (/usr/lib/nagios/plugins/check_tcp) is not installed.
# Exit 0 and "TCP OK" when HOST:PORT accepts a connection, 2 and "TCP CRITICAL" when not,
# 3 (UNKNOWN) on a usage error; the connect time follows the "|" as performance data.
if [ $# -ne 2 ]; then
    echo "TCP UNKNOWN - usage: $0 HOST PORT"
    exit 3
fi
host=$1
port=$2
start=$(date +%s%N)
if exec 3<>"/dev/tcp/$host/$port"; then
    exec 3>&-
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    echo "TCP OK - $host:$port accepts connections | time=${ms}ms;;;0"
    exit 0
fi 2>/dev/null
echo "TCP CRITICAL - $host:$port does not accept connections"
exit 2
