{{/* The chart's name, or nameOverride. */}}
{{- define "tokensync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: fullnameOverride, else the release name, with
the chart's name (or nameOverride) unless it already holds it. */}}
{{- define "tokensync.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
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
{{- $repository := required "image.repository is required: no public image is published. Build and push your own (make image IMG=registry.example.com/tokensync, then the crane push it prints), then install with the --set image.repository=... --set image.tag=... it prints (README, \"Install with Helm\")" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
NO_PROXY with proxy.httpsProxy: the API server's address first (client-go
dials it by the IP of $KUBERNETES_SERVICE_HOST, which the kubelet expands),
the cluster's Services (.svc and .<proxy.clusterDomain>), then proxy.noProxy.
*/}}
{{- define "tokensync.noProxy" -}}
{{- $entries := list "$(KUBERNETES_SERVICE_HOST)" ".svc" (printf ".%s" .Values.proxy.clusterDomain) -}}
{{- join "," (concat $entries .Values.proxy.noProxy) -}}
{{- end -}}

{{/* The port of proxy.httpsProxy: its own, or its scheme's. */}}
{{- define "tokensync.proxyPort" -}}
{{- $url := urlParse .Values.proxy.httpsProxy -}}
{{- $port := regexFind ":[0-9]+$" $url.host | trimPrefix ":" -}}
{{- if $port -}}{{ $port }}{{- else if eq $url.scheme "https" -}}443{{- else -}}80{{- end -}}
{{- end -}}

{{/*
The topologySpreadConstraints, each without a labelSelector given the
manager pods' labels (the default spreads the replicas over nodes).
*/}}
{{- define "tokensync.topologySpreadConstraints" -}}
{{- $pods := merge (include "tokensync.selectorLabels" . | fromYaml) (dict "app.kubernetes.io/component" "manager") -}}
{{- $constraints := list -}}
{{- range .Values.topologySpreadConstraints -}}
{{- $c := deepCopy . -}}
{{- if not $c.labelSelector -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $pods) -}}
{{- end -}}
{{- $constraints = append $constraints $c -}}
{{- end -}}
{{- toYaml $constraints -}}
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

{{/* Where caBundle's volume is mounted (not under a directory an
extraVolumeMounts example uses: a mount inside a read-only volume cannot be
made), and the file --ca-bundle-file reads there. */}}
{{- define "tokensync.caBundleDir" -}}
/etc/tokensync-ca-bundle
{{- end -}}

{{- define "tokensync.caBundleFile" -}}
{{ include "tokensync.caBundleDir" . }}/ca.crt
{{- end -}}
