{{/*
Names and labels.
*/}}
{{- define "earwitness.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "earwitness.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<fullname>-<component>"; 52 characters leave room for StatefulSet pod and PVC suffixes. */}}
{{- define "earwitness.componentName" -}}
{{- printf "%s-%s" (include "earwitness.fullname" .root) .component | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "earwitness.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "earwitness.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: earwitness
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "earwitness.selectorLabels" -}}
app.kubernetes.io/name: {{ include "earwitness.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Image reference: digest wins over tag; tag defaults to the chart's appVersion. */}}
{{- define "earwitness.image" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository (default $.appVersion .tag) }}
{{- end }}
{{- end }}

{{/*
Kafka client security: librdkafka properties derived from kafka.sasl / kafka.tls. Secrets are
not here: the SASL username and password reach the process as env from kafka.sasl.existingSecret.
*/}}
{{- define "earwitness.kafkaSecurityProps" -}}
{{- $k := .Values.kafka }}
{{- $props := dict }}
{{- if and $k.sasl.enabled $k.tls.enabled }}
{{- $_ := set $props "security.protocol" "SASL_SSL" }}
{{- else if $k.sasl.enabled }}
{{- $_ := set $props "security.protocol" "SASL_PLAINTEXT" }}
{{- else if $k.tls.enabled }}
{{- $_ := set $props "security.protocol" "SSL" }}
{{- end }}
{{- if $k.sasl.enabled }}
{{- $_ := set $props "sasl.mechanism" $k.sasl.mechanism }}
{{- end }}
{{- if $k.tls.enabled }}
{{- $_ := set $props "ssl.ca.location" (printf "%s/%s" (include "earwitness.kafkaTlsDir" .) $k.tls.caKey) }}
{{- if $k.tls.certKey }}
{{- $_ := set $props "ssl.certificate.location" (printf "%s/%s" (include "earwitness.kafkaTlsDir" .) $k.tls.certKey) }}
{{- $_ := set $props "ssl.key.location" (printf "%s/%s" (include "earwitness.kafkaTlsDir" .) $k.tls.keyKey) }}
{{- end }}
{{- end }}
{{- toYaml $props }}
{{- end }}

{{- define "earwitness.kafkaTlsDir" -}}/etc/earwitness/kafka-tls{{- end }}

{{/*
A component's client properties: its own settings (dict) over kafka.client over security.
Call with (dict "root" $ "own" <settings dict or nil>).
*/}}
{{- define "earwitness.kafkaClient" -}}
{{- $security := include "earwitness.kafkaSecurityProps" .root | fromYaml }}
{{- toYaml (merge (deepCopy (.own | default dict)) (deepCopy .root.Values.kafka.client) $security) }}
{{- end }}

{{/*
Env for the SASL credentials. Call with (dict "root" $ "username" ENV "password" ENV).
*/}}
{{- define "earwitness.kafkaSaslEnv" -}}
{{- $sasl := .root.Values.kafka.sasl }}
{{- if $sasl.enabled }}
- name: {{ .username }}
  valueFrom:
    secretKeyRef: {name: {{ $sasl.existingSecret | quote }}, key: {{ $sasl.usernameKey | quote }}}
- name: {{ .password }}
  valueFrom:
    secretKeyRef: {name: {{ $sasl.existingSecret | quote }}, key: {{ $sasl.passwordKey | quote }}}
{{- end }}
{{- end }}

{{- define "earwitness.kafkaTlsVolume" -}}
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret | quote }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{- define "earwitness.kafkaTlsMount" -}}
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  mountPath: {{ include "earwitness.kafkaTlsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
The analyzer's settings file, as the process will read it.
*/}}
{{- define "earwitness.analyzer.settings" -}}
{{- $s := deepCopy .Values.analyzer.settings }}
{{- $kafka := $s.kafka | default dict }}
{{- if not (hasKey $kafka "bootstrap_servers") }}
{{- $_ := set $kafka "bootstrap_servers" .Values.kafka.bootstrapServers }}
{{- end }}
{{- if not (hasKey $kafka "new_topic_partitions") }}
{{- /* a frames topic the analyzer creates gets the partitions the replicas are sized for */}}
{{- $_ := set $kafka "new_topic_partitions" (int .Values.analyzer.inputTopicPartitions) }}
{{- end }}
{{- $client := include "earwitness.kafkaClient" (dict "root" . "own" $kafka.client) | fromYaml }}
{{- if $client }}
{{- $_ := set $kafka "client" $client }}
{{- end }}
{{- $_ := set $s "kafka" $kafka }}
{{- $http := $s.http | default dict }}
{{- if not (hasKey $http "host") }}
{{- $_ := set $http "host" "0.0.0.0" }}
{{- end }}
{{- if .Values.analyzer.metricsToken.existingSecret }}
{{- $_ := set $http "metrics_token_file" (include "earwitness.metricsTokenFile" .) }}
{{- end }}
{{- $_ := set $s "http" $http }}
{{- toYaml $s }}
{{- end }}

{{/* Values the analyzer's objects share; defaults are AnalyzerSettings'. */}}
{{- define "earwitness.analyzer.port" -}}
{{- (.Values.analyzer.settings.http | default dict).port | default 9400 | int }}
{{- end }}

{{- define "earwitness.analyzer.gpus" -}}
{{- (.Values.analyzer.settings.engine | default dict).tensor_parallel_size | default 1 | int }}
{{- end }}

{{- define "earwitness.analyzer.kafka" -}}
{{- include "earwitness.analyzer.settings" . | fromYaml | dig "kafka" dict | toYaml }}
{{- end }}

{{/*
The alert runner's settings file. Receivers named in alerts.receiverSecrets get their credential
from a mounted file (<field>_file); receiverCredentialField maps type → field.
*/}}
{{- define "earwitness.alerts.settings" -}}
{{- $s := deepCopy .Values.alerts.settings }}
{{- $_ := set $s "rules_path" "rules.yaml" }}
{{- if not (hasKey $s "metrics_port") }}
{{- $_ := set $s "metrics_port" 9464 }}
{{- end }}
{{- if not (hasKey $s "metrics_host") }}
{{- $_ := set $s "metrics_host" "0.0.0.0" }}
{{- end }}
{{- if .Values.alerts.metricsToken.existingSecret }}
{{- $_ := set $s "metrics_token_file" (include "earwitness.metricsTokenFile" .) }}
{{- end }}
{{- $kafka := $s.kafka | default dict }}
{{- if not (hasKey $kafka "bootstrap_servers") }}
{{- $_ := set $kafka "bootstrap_servers" .Values.kafka.bootstrapServers }}
{{- end }}
{{- if not (hasKey $kafka "captions_topic") }}
{{- $analyzerKafka := include "earwitness.analyzer.kafka" . | fromYaml }}
{{- $_ := set $kafka "captions_topic" ($analyzerKafka.captions_topic | default "earwitness.captions") }}
{{- end }}
{{- $client := include "earwitness.kafkaClient" (dict "root" . "own" ($kafka.client | default $kafka.client_config)) | fromYaml }}
{{- $_ := unset $kafka "client_config" }}
{{- if $client }}
{{- $_ := set $kafka "client" $client }}
{{- end }}
{{- $_ := set $s "kafka" $kafka }}
{{- $receivers := $s.receivers | default dict }}
{{- range $name, $ref := .Values.alerts.receiverSecrets }}
{{- $receiver := get $receivers $name }}
{{- if not $receiver }}
{{- fail (printf "alerts.receiverSecrets.%s: no receiver %q in alerts.settings.receivers" $name $name) }}
{{- end }}
{{- $field := include "earwitness.alerts.credentialField" $receiver.type }}
{{- if not $field }}
{{- fail (printf "alerts.receiverSecrets.%s: receivers of type %q take no credential" $name $receiver.type) }}
{{- end }}
{{- $_ := set $receiver (printf "%s_file" $field) (printf "%s/%s/%s" (include "earwitness.alerts.secretsDir" $) $name $field) }}
{{- end }}
{{- $_ := set $s "receivers" $receivers }}
{{- toYaml $s }}
{{- end }}

{{- define "earwitness.alerts.credentialField" -}}
{{- get (dict "webhook" "secret" "slack" "url" "alertmanager" "token") (toString .) }}
{{- end }}

{{- define "earwitness.alerts.secretsDir" -}}/var/run/secrets/earwitness/receivers{{- end }}

{{- define "earwitness.alerts.port" -}}
{{- include "earwitness.alerts.settings" . | fromYaml | dig "metrics_port" 9464 | int }}
{{- end }}

{{/*
Checks that no schema can express (cross-field). Included by every component template.
*/}}
{{- define "earwitness.validate" -}}
{{- $a := .Values.analyzer }}
{{- $k := .Values.kafka }}
{{- if and $k.sasl.enabled (not $k.sasl.existingSecret) }}
{{- fail "kafka.sasl.enabled needs kafka.sasl.existingSecret (the chart never takes secret values)" }}
{{- end }}
{{- if and $k.tls.enabled (not $k.tls.existingSecret) }}
{{- fail "kafka.tls.enabled needs kafka.tls.existingSecret" }}
{{- end }}
{{- if ne (empty $k.tls.certKey) (empty $k.tls.keyKey) }}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey go together (mutual TLS)" }}
{{- end }}
{{- if $a.enabled }}
{{- $partitions := int $a.inputTopicPartitions }}
{{- if and (not $a.keda.enabled) (gt (int $a.replicaCount) $partitions) }}
{{- fail (printf "analyzer.replicaCount (%d) exceeds analyzer.inputTopicPartitions (%d): extra pods would idle" (int $a.replicaCount) $partitions) }}
{{- end }}
{{- if $a.keda.enabled }}
{{- if gt (int $a.keda.maxReplicaCount) $partitions }}
{{- fail (printf "analyzer.keda.maxReplicaCount (%d) exceeds analyzer.inputTopicPartitions (%d)" (int $a.keda.maxReplicaCount) $partitions) }}
{{- end }}
{{- if gt (int $a.keda.minReplicaCount) (int $a.keda.maxReplicaCount) }}
{{- fail "analyzer.keda.minReplicaCount exceeds analyzer.keda.maxReplicaCount" }}
{{- end }}
{{- if eq $a.keda.trigger "behindRealtime" }}
{{- if not $a.keda.behindRealtime.serverAddress }}
{{- fail "analyzer.keda.trigger behindRealtime needs analyzer.keda.behindRealtime.serverAddress (the Prometheus that scrapes the analyzer)" }}
{{- end }}
{{- $maxLag := (($a.settings.batch | default dict).max_lag_s | default 120.0) | float64 }}
{{- if ge (float64 $a.keda.behindRealtime.thresholdSeconds) $maxLag }}
{{- fail (printf "analyzer.keda.behindRealtime.thresholdSeconds must be below settings.batch.max_lag_s (%v): an overloaded analyzer sheds and is then at least about max_lag_s behind, so the threshold might never be reached" $maxLag) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $kind, $res := $a.resources }}
{{- if hasKey ($res | default dict) $a.gpuResource }}
{{- fail (printf "analyzer.resources.%s.%s: the GPU count comes from analyzer.settings.engine.tensor_parallel_size" $kind $a.gpuResource) }}
{{- end }}
{{- end }}
{{- $r := .Values.observability.prometheusRule }}
{{- if $r.enabled }}
{{- $maxLag := (($a.settings.batch | default dict).max_lag_s | default 120.0) | float64 }}
{{- if ge (float64 $r.behindRealtimeSeconds) $maxLag }}
{{- fail (printf "observability.prometheusRule.behindRealtimeSeconds must be below settings.batch.max_lag_s (%v): an overloaded analyzer sheds and is then at least about max_lag_s behind" $maxLag) }}
{{- end }}
{{- $unready := (($a.settings.engine | default dict).stall_unready_s | default 120.0) | float64 }}
{{- if ge (float64 $r.stuckEngineSeconds) $unready }}
{{- fail (printf "observability.prometheusRule.stuckEngineSeconds must be below settings.engine.stall_unready_s (%v), or readiness fails first" $unready) }}
{{- end }}
{{- end }}
{{- $drain := (($a.settings.batch | default dict).drain_timeout_s | default 30.0) | float64 }}
{{- if le (float64 $a.terminationGracePeriodSeconds) $drain }}
{{- fail "analyzer.terminationGracePeriodSeconds must exceed settings.batch.drain_timeout_s" }}
{{- end }}
{{- end }}
{{- if .Values.ingest.enabled }}
{{- $stop := (.Values.ingest.settings.stop_timeout_s | default 10.0) | float64 }}
{{- if le (float64 .Values.ingest.terminationGracePeriodSeconds) $stop }}
{{- fail "ingest.terminationGracePeriodSeconds must exceed settings.stop_timeout_s" }}
{{- end }}
{{- end }}
{{- if .Values.alerts.enabled }}
{{- $drain := (.Values.alerts.settings.drain_timeout_s | default 30.0) | float64 }}
{{- if le (float64 .Values.alerts.terminationGracePeriodSeconds) $drain }}
{{- fail "alerts.terminationGracePeriodSeconds must exceed settings.drain_timeout_s" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The ingest settings file (IngestSettings, ingest/config.py) without its sources: kafka
(bootstrap, client security, the analyzer's frames_topic unless set), http (0.0.0.0:9410).
*/}}
{{- define "earwitness.ingest.settings" -}}
{{- $s := deepCopy .Values.ingest.settings }}
{{- $kafka := $s.kafka | default dict }}
{{- if not (hasKey $kafka "bootstrap_servers") }}
{{- $_ := set $kafka "bootstrap_servers" .Values.kafka.bootstrapServers }}
{{- end }}
{{- if not (hasKey $kafka "frames_topic") }}
{{- $analyzerKafka := include "earwitness.analyzer.kafka" . | fromYaml }}
{{- $_ := set $kafka "frames_topic" ($analyzerKafka.frames_topic | default "earwitness.frames") }}
{{- end }}
{{- if not (hasKey $kafka "new_topic_partitions") }}
{{- /* a frames topic the analyzer creates gets the partitions the replicas are sized for */}}
{{- $_ := set $kafka "new_topic_partitions" (int .Values.analyzer.inputTopicPartitions) }}
{{- end }}
{{- $client := include "earwitness.kafkaClient" (dict "root" . "own" $kafka.client) | fromYaml }}
{{- if $client }}
{{- $_ := set $kafka "client" $client }}
{{- end }}
{{- $_ := set $s "kafka" $kafka }}
{{- $http := $s.http | default dict }}
{{- if not (hasKey $http "host") }}
{{- $_ := set $http "host" "0.0.0.0" }}
{{- end }}
{{- if not (hasKey $http "port") }}
{{- $_ := set $http "port" 9410 }}
{{- end }}
{{- $_ := set $s "http" $http }}
{{- toYaml $s }}
{{- end }}

{{/*
The sources, as the process reads them: each source named in ingest.credentials gets
password_file pointing at its mounted Secret key.
*/}}
{{- define "earwitness.ingest.sources" -}}
{{- $sources := deepCopy (.Values.ingest.sources | default list) }}
{{- $ids := list }}
{{- range $sources }}
{{- $ids = append $ids .stream_id }}
{{- if hasKey $.Values.ingest.credentials .stream_id }}
{{- $_ := set . "password_file" (printf "%s/%s" (include "earwitness.ingest.secretsDir" $) .stream_id) }}
{{- $_ := unset . "password_env" }}
{{- end }}
{{- end }}
{{- range $id, $_ := .Values.ingest.credentials }}
{{- if not (has $id $ids) }}
{{- fail (printf "ingest.credentials.%s: no source with stream_id %q in ingest.sources" $id $id) }}
{{- end }}
{{- end }}
{{- toYaml (dict "sources" $sources) }}
{{- end }}

{{- define "earwitness.ingest.secretsDir" -}}/var/run/secrets/earwitness/sources{{- end }}

{{- define "earwitness.ingest.port" -}}
{{- include "earwitness.ingest.settings" . | fromYaml | dig "http" "port" 9410 | int }}
{{- end }}

{{/*
The console's settings file, as the process will read it (see values.yaml, console.settings).
*/}}
{{- define "earwitness.console.settings" -}}
{{- $c := .Values.console }}
{{- $s := deepCopy $c.settings }}
{{- $kafka := $s.kafka | default dict }}
{{- if not (hasKey $kafka "bootstrap_servers") }}
{{- $_ := set $kafka "bootstrap_servers" .Values.kafka.bootstrapServers }}
{{- end }}
{{- $analyzerKafka := include "earwitness.analyzer.kafka" . | fromYaml }}
{{- if not (hasKey $kafka "captions_topic") }}
{{- $_ := set $kafka "captions_topic" ($analyzerKafka.captions_topic | default "earwitness.captions") }}
{{- end }}
{{- if not (hasKey $kafka "frames_topic") }}
{{- $_ := set $kafka "frames_topic" ($analyzerKafka.frames_topic | default "earwitness.frames") }}
{{- end }}
{{- $client := include "earwitness.kafkaClient" (dict "root" . "own" $kafka.client) | fromYaml }}
{{- if $client }}
{{- $_ := set $kafka "client" $client }}
{{- end }}
{{- $_ := set $s "kafka" $kafka }}
{{- $store := $s.store | default dict }}
{{- $_ := set $store "path" (printf "%s/console.db" $c.persistence.mountPath) }}
{{- $_ := set $s "store" $store }}
{{- $http := $s.http | default dict }}
{{- if not (hasKey $http "host") }}
{{- $_ := set $http "host" "0.0.0.0" }}
{{- end }}
{{- if not (hasKey $http "port") }}
{{- $_ := set $http "port" 8470 }}
{{- end }}
{{- $_ := set $s "http" $http }}
{{- if not (hasKey $s "metrics_port") }}
{{- $_ := set $s "metrics_port" 9465 }}
{{- end }}
{{- if not (hasKey $s "metrics_host") }}
{{- $_ := set $s "metrics_host" "0.0.0.0" }}
{{- end }}
{{- $listen := $s.listen | default dict }}
{{- if and (not (hasKey $listen "windowing")) .Values.analyzer.settings.windowing }}
{{- $_ := set $listen "windowing" (deepCopy .Values.analyzer.settings.windowing) }}
{{- end }}
{{- if $listen }}
{{- $_ := set $s "listen" $listen }}
{{- end }}
{{- $auth := $s.auth | default dict }}
{{- if $c.authSecret.existingSecret }}
{{- $field := get (dict "bearer" "token_file" "basic" "users_file") ($auth.mode | toString) }}
{{- if $field }}
{{- $_ := set $auth $field (include "earwitness.console.secretFile" .) }}
{{- end }}
{{- end }}
{{- $_ := set $s "auth" $auth }}
{{- toYaml $s }}
{{- end }}

{{- define "earwitness.console.secretFile" -}}/var/run/secrets/earwitness/console/credential{{- end }}

{{- define "earwitness.console.port" -}}
{{- include "earwitness.console.settings" . | fromYaml | dig "http" "port" 8470 | int }}
{{- end }}

{{- define "earwitness.console.metricsPort" -}}
{{- include "earwitness.console.settings" . | fromYaml | dig "metrics_port" 9465 | int }}
{{- end }}

{{/* Checks of the console's values that no schema can express. */}}
{{- define "earwitness.console.validate" -}}
{{- $c := .Values.console }}
{{- $mode := (($c.settings.auth | default dict).mode | default "none") | toString }}
{{- if eq $mode "none" }}
{{- fail "console.settings.auth.mode: the console listens on 0.0.0.0 in the pod and needs proxy, bearer or basic" }}
{{- end }}
{{- if and (has $mode (list "bearer" "basic")) (not $c.authSecret.existingSecret) }}
{{- fail (printf "console.settings.auth.mode %s needs console.authSecret.existingSecret and key" $mode) }}
{{- end }}
{{- if and $c.persistence.enabled (gt (int $c.replicaCount) 1) }}
{{- fail "console.replicaCount > 1 needs console.persistence.enabled=false (one database file per pod, rebuilt from Kafka)" }}
{{- end }}
{{- end }}

{{/*
/metrics behind a bearer token: <component>.metricsToken {existingSecret, key}, mounted as the
file metricsTokenFile that the settings' metrics_token_file names. Called with the component's
values.
*/}}
{{- define "earwitness.metricsTokenFile" -}}/var/run/secrets/earwitness/metrics/token{{- end }}

{{- define "earwitness.metricsTokenMount" -}}
{{- if .metricsToken.existingSecret }}
- {name: metrics-token, mountPath: /var/run/secrets/earwitness/metrics, readOnly: true}
{{- end }}
{{- end }}

{{- define "earwitness.metricsTokenVolume" -}}
{{- with .metricsToken }}{{ if .existingSecret }}
- name: metrics-token
  secret:
    secretName: {{ .existingSecret | quote }}
    defaultMode: 0440
    items:
      - {key: {{ .key | quote }}, path: token}
{{- end }}{{ end }}
{{- end }}
