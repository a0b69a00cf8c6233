{{/*
Names, labels and the pieces every component shares. Selectors use only
app.kubernetes.io/{name,instance,component}: never the chart version, so an upgrade never
changes a selector (Deployments and StatefulSets forbid that).
*/}}

{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: <release> if it contains the chart name, else <release>-<name>. */}}
{{- define "berth.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "berth.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "berth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: include "berth.selectorLabels" (list . "worker") */}}
{{- define "berth.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "berth.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* All labels of one component's objects: include "berth.labels" (list . "worker") */}}
{{- define "berth.labels" -}}
{{- $root := index . 0 -}}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/part-of: berth
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ include "berth.chart" $root }}
{{- end -}}

{{/* <fullname>-<component>: object and ServiceAccount names. */}}
{{- define "berth.componentName" -}}
{{- printf "%s-%s" (include "berth.fullname" (index . 0)) (index . 1) -}}
{{- end -}}

{{- define "berth.clusterId" -}}
{{- default .Release.Name .Values.clusterId -}}
{{- end -}}

{{- define "berth.shardMapName" -}}
{{- default (include "berth.fullname" .) .Values.shardMap.name -}}
{{- end -}}

{{- define "berth.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The worker headless Service's DNS name: the name internal TLS certificates carry. */}}
{{- define "berth.workerServiceFqdn" -}}
{{- printf "%s.%s.svc.%s" (include "berth.componentName" (list . "worker")) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{- define "berth.cassandraSecretName" -}}
{{- default (include "berth.componentName" (list . "cassandra")) .Values.cassandra.auth.existingSecret -}}
{{- end -}}

{{/* The worker's --journal URL. Credentials never go in it (they come from env). */}}
{{- define "berth.journalUrl" -}}
{{- $c := .Values.cassandra -}}
{{- $q := list (printf "dc=%s" $c.localDataCenter) -}}
{{- if $c.replication -}}
{{- $q = append $q (printf "replication=%s" $c.replication) -}}
{{- else -}}
{{- $q = append $q (printf "rf=%d" (int $c.replicationFactor)) -}}
{{- end -}}
{{- $q = append $q (printf "consistency=%s" $c.consistency) -}}
{{- if $c.timeoutMs -}}
{{- $q = append $q (printf "timeoutMs=%d" (int $c.timeoutMs)) -}}
{{- end -}}
{{- printf "cassandra://%s/%s?%s" (join "," $c.hosts) $c.keyspace (join "&" $q) -}}
{{- end -}}

{{/* Pod-level security context (all components and the test pod). */}}
{{- define "berth.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
{{- with .Values.podSecurityContext.fsGroup }}
fsGroup: {{ . }}
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context. */}}
{{- define "berth.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Internal TLS flags (worker, gateway, operator), one per line as YAML list items. */}}
{{- define "berth.tlsArgs" -}}
{{- if .Values.tls.enabled }}
- --internal-tls-dir
- /etc/berth/internal-tls
- --internal-tls-server-name
- {{ include "berth.workerServiceFqdn" . }}
{{- end }}
{{- end -}}

{{- define "berth.tlsVolumeMount" -}}
{{- if .Values.tls.enabled }}
- name: internal-tls
  mountPath: /etc/berth/internal-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "berth.tlsVolume" -}}
{{- if .Values.tls.enabled }}
- name: internal-tls
  secret:
    secretName: {{ required "tls.secretName is required when tls.enabled is true" .Values.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* Downward-API env every component gets. */}}
{{- define "berth.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}

{{/* Cross-value checks the schema cannot express. */}}
{{- define "berth.validate" -}}
{{- $w := .Values.worker -}}
{{- if le (mul (int $w.terminationGracePeriodSeconds) 1000) (int $w.handOffTimeoutMs) -}}
{{- fail (printf "worker.terminationGracePeriodSeconds (%d s) must be longer than worker.handOffTimeoutMs (%d ms): the kubelet would kill a worker still handing off its shards" (int $w.terminationGracePeriodSeconds) (int $w.handOffTimeoutMs)) -}}
{{- end -}}
{{- if ge (int $w.leaseRenewMs) (int $w.leaseDurationMs) -}}
{{- fail (printf "worker.leaseRenewMs (%d) must be below worker.leaseDurationMs (%d)" (int $w.leaseRenewMs) (int $w.leaseDurationMs)) -}}
{{- end -}}
{{- $le := .Values.operator.leaderElection -}}
{{- if not (and (lt (int $le.retryPeriodMs) (int $le.renewDeadlineMs)) (lt (int $le.renewDeadlineMs) (int $le.leaseDurationMs))) -}}
{{- fail "operator.leaderElection: need retryPeriodMs < renewDeadlineMs < leaseDurationMs" -}}
{{- end -}}
{{- if and .Values.gateway.autoscaling.enabled (gt (int .Values.gateway.autoscaling.minReplicas) (int .Values.gateway.autoscaling.maxReplicas)) -}}
{{- fail "gateway.autoscaling.minReplicas must not exceed maxReplicas" -}}
{{- end -}}
{{- if and .Values.cassandra.auth.enabled (not .Values.cassandra.auth.existingSecret) (or (not .Values.cassandra.auth.username) (not .Values.cassandra.auth.password)) -}}
{{- fail "cassandra.auth.enabled: set cassandra.auth.existingSecret, or both cassandra.auth.username and cassandra.auth.password" -}}
{{- end -}}
{{- end -}}

{{- define "berth.testPoolName" -}}
{{- default (include "berth.componentName" (list . "helm-test")) .Values.tests.pool.name -}}
{{- end -}}
