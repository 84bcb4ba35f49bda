#!/bin/bash
# Runs once, when the PostgreSQL volume is empty (official image: /docker-entrypoint-initdb.d/).
# One database per service, owned by the application role $POSTGRES_USER.
set -euo pipefail
for db in ${TACSO_DATABASES:-registry events notify}; do
  echo "creating database $db"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
SELECT 'CREATE DATABASE "$db" OWNER "$POSTGRES_USER"'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\gexec
SQL
done
