{{/* The name of every object: the release name (router-policy-sync for the README's install). */}}
{{- define "rps.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels helm adds to every object it renders (the pod template keeps the base's own). */}}
{{- define "rps.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The router URL: config.mikrotikBaseURL, or the Go chart's spelling config.mikrotikBaseUrl. */}}
{{- define "rps.baseURL" -}}
{{- $url := .Values.config.mikrotikBaseURL | default .Values.config.mikrotikBaseUrl -}}
{{- required "config.mikrotikBaseURL is required: the RouterOS REST base, e.g. https://192.0.2.1/rest" $url -}}
{{- end -}}

{{/* config.syncInterval (Nm or Nh) as a cron schedule, unless schedule overrides it. */}}
{{- define "rps.schedule" -}}
{{- if .Values.schedule -}}
{{- .Values.schedule -}}
{{- else -}}
{{- $interval := .Values.config.syncInterval -}}
{{- $n := trimSuffix "h" (trimSuffix "m" $interval) | atoi -}}
{{- $bad := printf "config.syncInterval %q cannot be a cron schedule: use Nm with N dividing 60, Nh with N dividing 24, or set schedule" $interval -}}
{{- if hasSuffix "m" $interval -}}
{{- if eq $n 60 -}}0 * * * *
{{- else if and (gt $n 0) (lt $n 60) (eq (mod 60 $n) 0) -}}*/{{ $n }} * * * *
{{- else -}}{{ fail $bad }}{{- end -}}
{{- else if hasSuffix "h" $interval -}}
{{- if eq $n 24 -}}0 0 * * *
{{- else if and (gt $n 0) (lt $n 24) (eq (mod 24 $n) 0) -}}0 */{{ $n }} * * *
{{- else -}}{{ fail $bad }}{{- end -}}
{{- else -}}{{ fail $bad }}{{- end -}}
{{- end -}}
{{- end -}}

{{/* activeDeadlineSeconds: given, or 4/5 of the interval (240 for 5m), or 240 with schedule. */}}
{{- define "rps.activeDeadline" -}}
{{- if not (kindIs "invalid" .Values.activeDeadlineSeconds) -}}
{{- .Values.activeDeadlineSeconds -}}
{{- else if .Values.schedule -}}
240
{{- else -}}
{{- $interval := .Values.config.syncInterval -}}
{{- $n := trimSuffix "h" (trimSuffix "m" $interval) | atoi -}}
{{- $seconds := ternary (mul $n 3600) (mul $n 60) (hasSuffix "h" $interval) -}}
{{- div (mul $seconds 4) 5 -}}
{{- end -}}
{{- end -}}

{{/* Seconds between runs, for the alert thresholds: monitoring.intervalSeconds, or
config.syncInterval (Nm / Nh); with schedule, monitoring.intervalSeconds must be given. */}}
{{- define "rps.intervalSeconds" -}}
{{- if not (kindIs "invalid" .Values.monitoring.intervalSeconds) -}}
{{- .Values.monitoring.intervalSeconds -}}
{{- else if .Values.schedule -}}
{{- fail "monitoring.intervalSeconds is required with schedule: the alerts' thresholds are counted in sync intervals" -}}
{{- else -}}
{{- $interval := .Values.config.syncInterval -}}
{{- $n := trimSuffix "h" (trimSuffix "m" $interval) | atoi -}}
{{- ternary (mul $n 3600) (mul $n 60) (hasSuffix "h" $interval) -}}
{{- end -}}
{{- end -}}
