{{/* Chart name, for app.kubernetes.io/name. */}}
{{- define "legion-platform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name prefix: the release name unless fullnameOverride. */}}
{{- define "legion-platform.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of the router objects. */}}
{{- define "legion-platform.router.fullname" -}}
{{- printf "%s-router" (include "legion-platform.fullname" .) -}}
{{- end -}}

{{/* Labels common to every object. */}}
{{- define "legion-platform.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "legion-platform.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: legion-ci
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of the router pods. */}}
{{- define "legion-platform.router.selectorLabels" -}}
app.kubernetes.io/name: {{ include "legion-platform.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: router
{{- end -}}

{{/* Labels of the router objects. */}}
{{- define "legion-platform.router.labels" -}}
{{ include "legion-platform.labels" . }}
app.kubernetes.io/component: router
{{- end -}}

{{/* image reference: repository@digest when a digest is given, else repository:tag (tag defaults to appVersion). */}}
{{- define "legion-platform.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Secret and key holding LEGION_REGISTRY_URL. */}}
{{- define "legion-platform.registrySecretName" -}}
{{- default (printf "%s-registry" (include "legion-platform.fullname" .)) .Values.registry.existingSecret -}}
{{- end -}}
{{- define "legion-platform.registrySecretKey" -}}
{{- if .Values.registry.existingSecret -}}{{ .Values.registry.existingSecretKey }}{{- else -}}registry-url{{- end -}}
{{- end -}}

{{/* Name of the feedback PVC. */}}
{{- define "legion-platform.feedbackClaimName" -}}
{{- default (printf "%s-feedback" (include "legion-platform.fullname" .)) .Values.feedback.persistence.existingClaim -}}
{{- end -}}

{{/* "true" when the feedback volume can be mounted by one node only (a PVC without ReadWriteMany). */}}
{{- define "legion-platform.feedbackSingleNode" -}}
{{- if and .Values.feedback.persistence.enabled (not (has "ReadWriteMany" .Values.feedback.persistence.accessModes)) -}}true{{- end -}}
{{- end -}}

{{/* Cross-field checks the JSON schema cannot express; fails the render with a message naming the values. */}}
{{- define "legion-platform.validate" -}}
{{- $r := .Values.router -}}
{{- if and (include "legion-platform.feedbackSingleNode" .) (or $r.autoscaling.enabled (gt (int $r.replicaCount) 1)) -}}
{{- fail "router.replicaCount > 1 or router.autoscaling.enabled needs feedback.persistence.accessModes to include ReadWriteMany (a ReadWriteOnce volume mounts on one node only), or feedback.persistence.enabled=false" -}}
{{- end -}}
{{- if and $r.autoscaling.enabled (lt (int $r.autoscaling.maxReplicas) (int $r.autoscaling.minReplicas)) -}}
{{- fail (printf "router.autoscaling.maxReplicas (%d) is below router.autoscaling.minReplicas (%d)" (int $r.autoscaling.maxReplicas) (int $r.autoscaling.minReplicas)) -}}
{{- end -}}
{{- if and .Values.gateway.enabled (not .Values.gateway.parentRefs) -}}
{{- fail "gateway.enabled needs gateway.parentRefs: the Gateway(s) the models' HTTPRoutes attach to" -}}
{{- end -}}
{{- if and (not .Values.registry.existingSecret) (not .Values.registry.url) -}}
{{- fail "set registry.url or registry.existingSecret: the router reads its traffic weights from the registry database" -}}
{{- end -}}
{{- end -}}

{{/* One backendRef of an HTTPRoute: a model version's Service (namespace only when not the route's). */}}
{{- define "legion-platform.routeBackend" -}}
name: {{ .b.service | quote }}
{{- if and .b.namespace (ne .b.namespace .ns) }}
namespace: {{ .b.namespace | quote }}
{{- end }}
port: {{ .b.port | default 80 | int }}
{{- end -}}

{{/* The artifact store: LEGION_STORE_URL, and the standard AWS variables from store.existingSecret (the
    endpoint optional, for an S3-compatible store that is not AWS S3). Nothing when store.url is empty. */}}
{{- define "legion-platform.storeEnv" -}}
{{- if .Values.store.url }}
- name: LEGION_STORE_URL
  value: {{ .Values.store.url | quote }}
{{- with .Values.store.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: AWS_SECRET_ACCESS_KEY
- name: AWS_ENDPOINT_URL
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: AWS_ENDPOINT_URL
      optional: true
{{- end }}
{{- end }}
{{- end -}}
