{{/* The chart's name. */}}
{{- define "tokensync.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name, with the chart's name unless it already holds it. */}}
{{- define "tokensync.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels the pods are selected by. */}}
{{- define "tokensync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tokensync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "tokensync.labels" -}}
{{ include "tokensync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "tokensync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tokensync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tokensync.image" -}}
{{- $repository := required "image.repository is required: no public image is published. Build and push your own (make image IMG=registry.example.com/tokensync:v0.1.0; crane push bin/tokensync-image.tar registry.example.com/tokensync:v0.1.0), then install with --set image.repository=registry.example.com/tokensync (README, \"Install with Helm\")" .Values.image.repository -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The rules of a Role or ClusterRole of config/rbac, copied into files/rbac by
`make manifests` (one source: the chart never spells out a rule of its own
for what config/rbac grants). Called with (dict "root" $ "file" "manager-role.yaml").
*/}}
{{- define "tokensync.rules" -}}
{{- $path := printf "files/rbac/%s" .file -}}
{{- $role := .root.Files.Get $path | fromYaml -}}
{{- if not $role.rules -}}
{{- fail (printf "%s has no rules (run make manifests)" $path) -}}
{{- end -}}
{{- toYaml $role.rules -}}
{{- end -}}

{{/* The port the metrics endpoint and the probes listen on. */}}
{{- define "tokensync.metricsPort" -}}8443{{- end -}}
{{- define "tokensync.probesPort" -}}8081{{- end -}}
