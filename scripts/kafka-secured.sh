# shellcheck shell=bash
# kafka-secured.sh — the secured mode of scripts/kafka-local.sh (`start --secured`), sourced by it.
#
# Kept in its own file so the broker version/logging choices of kafka-local.sh and this mode can
# change independently. Nothing here depends on the Kafka version: the KRaft settings below are the
# same in 3.9 and 4.x.
#
# What a secured broker has:
#   - one client listener, SASL_SSL, on the port kafka-local.sh picked; TLS with a throwaway CA
#     and server certificate generated here (openssl + keytool), valid for 127.0.0.1/localhost;
#   - SCRAM-SHA-256 and SCRAM-SHA-512 users created at format time (`format --add-scram`), each
#     with a random password: admin (super user, used for set-up and inter-broker traffic) and the
#     roles of docs/OPERATIONS.md (labeler, trainer, replay, subscriber) plus `limited`, a spare
#     principal the tests grant an incomplete set of ACLs;
#   - the StandardAuthorizer with allow.everyone.if.no.acl.found=false: a user may do only what an
#     ACL grants (none are created here: the tests and operators grant them);
#   - the controller listener on SASL_PLAINTEXT/PLAIN (loopback only; SCRAM cannot authenticate the
#     controller quorum because its credentials live in the metadata the quorum serves).
#
# `start --secured` prints, besides KAFKA_LOCAL_DIR:
#   KAFKA_SECURED_BROKERS=127.0.0.1:PORT     the SASL_SSL listener
#   KAFKA_SECURED_CA=DIR/tls/ca.pem          CA certificate clients must trust
#   KAFKA_SECURED_USERS=admin labeler ...    the SCRAM users
#   KAFKA_SECURED_PASSWORD_<USER>=...        their passwords (test broker only)

SECURED_USERS=(admin labeler trainer replay subscriber limited)

secured_password() { node -e 'process.stdout.write(require("node:crypto").randomBytes(18).toString("base64url"))'; }

# Throwaway CA + server certificate (SAN 127.0.0.1, localhost) in DIR/tls; PKCS12 key store for the
# broker, PEM CA for the clients and the broker's own trust store.
secured_tls() {
  local tls="$1/tls" pass="$2"
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rankdistill test CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1 || die "openssl could not create the test CA"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$tls/broker.key" -out "$tls/broker.csr" >/dev/null 2>&1 || die "openssl could not create the broker key"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$tls/ext.cnf"
  openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 2 -extfile "$tls/ext.cnf" -out "$tls/broker.pem" >/dev/null 2>&1 || die "openssl could not sign the broker certificate"
  openssl pkcs12 -export -in "$tls/broker.pem" -inkey "$tls/broker.key" -certfile "$tls/ca.pem" \
    -name broker -passout "pass:$pass" -out "$tls/broker.p12" >/dev/null 2>&1 || die "openssl could not write the broker key store"
  rm -f "$tls/broker.csr" "$tls/ca.key" "$tls/ca.srl"
  # keytool proves the store opens with the password the broker will use.
  keytool -list -storetype PKCS12 -keystore "$tls/broker.p12" -storepass "$pass" >/dev/null 2>&1 ||
    die "keytool cannot read the generated key store $tls/broker.p12"
}

# Rewrites DIR/server.properties (written by kafka-local.sh for PLAINTEXT) for SASL_SSL, generates
# the TLS material and the users' passwords, and sets SECURED_FORMAT_ARGS (the --add-scram options).
secured_configure() {
  local dir="$1" port="$2" cport="$3" u storepass
  storepass="$(secured_password)"
  secured_tls "$dir" "$storepass"
  : >"$dir/secured.env"
  chmod 600 "$dir/secured.env"
  for u in "${SECURED_USERS[@]}"; do
    printf 'KAFKA_SECURED_PASSWORD_%s=%s\n' "${u^^}" "$(secured_password)" >>"$dir/secured.env"
  done
  local admin_pass
  admin_pass="$(sed -n 's/^KAFKA_SECURED_PASSWORD_ADMIN=//p' "$dir/secured.env")"
  # Drop the PLAINTEXT listener lines; everything else (single node, light threads) stays.
  sed -i -e '/^listeners=/d' -e '/^advertised.listeners=/d' -e '/^inter.broker.listener.name=/d' \
    -e '/^listener.security.protocol.map=/d' "$dir/server.properties"
  cat >>"$dir/server.properties" <<EOF

# ---- secured mode (scripts/kafka-secured.sh) ----
listeners=SASL_SSL://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}
advertised.listeners=SASL_SSL://127.0.0.1:${port}
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=SASL_SSL
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
sasl.mechanism.controller.protocol=PLAIN
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${admin_pass}";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${admin_pass}";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${admin_pass}" user_admin="${admin_pass}";
ssl.keystore.type=PKCS12
ssl.keystore.location=${dir}/tls/broker.p12
ssl.keystore.password=${storepass}
ssl.key.password=${storepass}
ssl.truststore.type=PEM
ssl.truststore.location=${dir}/tls/ca.pem
ssl.client.auth=none
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
EOF
  chmod 600 "$dir/server.properties"
  SECURED_FORMAT_ARGS=()
  local name pass
  while IFS='=' read -r name pass; do
    u="${name#KAFKA_SECURED_PASSWORD_}"
    u="${u,,}"
    SECURED_FORMAT_ARGS+=(--add-scram "SCRAM-SHA-256=[name=$u,password=$pass]"
      --add-scram "SCRAM-SHA-512=[name=$u,password=$pass]")
  done <"$dir/secured.env"
}

# Readiness of the secured broker: the admin answers a metadata request over SASL_SSL.
secured_broker_answers() {
  local dir="$1" brokers="$2" admin_pass
  admin_pass="$(sed -n 's/^KAFKA_SECURED_PASSWORD_ADMIN=//p' "$dir/secured.env")"
  (cd "$REPO_ROOT" && SECURED_PASS="$admin_pass" node -e '
    const { readFileSync } = require("node:fs");
    const { Kafka, logLevel } = require("kafkajs");
    const kafka = new Kafka({
      clientId: "kafka-local-ready",
      brokers: [process.argv[1]],
      ssl: { ca: [readFileSync(process.argv[2], "utf8")] },
      sasl: { mechanism: "scram-sha-512", username: "admin", password: process.env.SECURED_PASS },
      logLevel: logLevel.NOTHING,
      connectionTimeout: 3000,
      requestTimeout: 5000,
      retry: { retries: 0 },
    });
    const admin = kafka.admin();
    admin.connect()
      .then(() => admin.listTopics())
      .then(() => admin.disconnect())
      .then(() => process.exit(0), () => process.exit(1));' "$brokers" "$dir/tls/ca.pem") >/dev/null 2>&1
}

# The KEY=VALUE lines of a started secured broker (stdout).
secured_print_env() {
  local dir="$1" port="$2"
  echo "KAFKA_SECURED_BROKERS=127.0.0.1:$port"
  echo "KAFKA_SECURED_CA=$dir/tls/ca.pem"
  echo "KAFKA_SECURED_USERS=${SECURED_USERS[*]}"
  cat "$dir/secured.env"
}
