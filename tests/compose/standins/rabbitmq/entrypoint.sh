#!/bin/bash
# Write the default user/vhost from the environment (as the official image does), then run.
set -euo pipefail
conf=/etc/rabbitmq/conf.d/10-defaults.conf
mkdir -p /etc/rabbitmq/conf.d
{
  echo "loopback_users = none"
  echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
  echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
  echo "default_vhost = ${RABBITMQ_DEFAULT_VHOST:-/}"
} >"$conf"
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
# Not -R: files the compose file mounts read-only (enabled_plugins, the cluster's configuration)
# cannot change owner.
chown rabbitmq:rabbitmq /etc/rabbitmq /etc/rabbitmq/conf.d "$conf"
if [ "$1" = rabbitmq-server ]; then
  shift
  # As the rabbitmq user (HOME=/var/lib/rabbitmq): the CLI tools find the same Erlang cookie.
  exec gosu rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi
exec "$@"
