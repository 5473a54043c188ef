{{/* Chart name, for app.kubernetes.io/name. */}}
{{- define "legion-model.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name: the release name (legion-<model>-<version>) unless fullnameOverride. */}}
{{- define "legion-model.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Model version as a label value: '+' (semver build metadata) is not allowed in labels. */}}
{{- define "legion-model.versionLabel" -}}
{{- .Values.model.version | toString | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable for the life of a release. */}}
{{- define "legion-model.selectorLabels" -}}
app.kubernetes.io/name: {{ include "legion-model.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "legion-model.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "legion-model.selectorLabels" . }}
app.kubernetes.io/version: {{ include "legion-model.versionLabel" . | quote }}
app.kubernetes.io/component: model-server
app.kubernetes.io/part-of: legion-ci
app.kubernetes.io/managed-by: {{ .Release.Service }}
legion.ai/model: {{ .Values.model.name | quote }}
legion.ai/version: {{ include "legion-model.versionLabel" . | quote }}
{{- end -}}

{{/* image reference: repository@digest when a digest is given, else repository:tag (tag defaults to model.version). */}}
{{- define "legion-model.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default (toString .Values.model.version) .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the JWT secret. */}}
{{- define "legion-model.jwtSecretName" -}}
{{- default (printf "%s-auth" (include "legion-model.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* Key of the JWT secret inside that Secret. */}}
{{- define "legion-model.jwtSecretKey" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecretKey }}{{- else -}}jwt-secret{{- end -}}
{{- end -}}

{{/* Cross-field checks the JSON schema cannot express; fails the render with a message naming the values. */}}
{{- define "legion-model.validate" -}}
{{- if and .Values.auth.jwtSecret .Values.auth.existingSecret -}}
{{- fail "auth.jwtSecret and auth.existingSecret are both set: give only one" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) -}}
{{- fail (printf "autoscaling.maxReplicas (%d) is below autoscaling.minReplicas (%d)" (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) -}}
{{- end -}}
{{- end -}}

{{/* The artifact store: LEGION_STORE_URL, and the standard AWS variables from store.existingSecret (the
    endpoint optional, for an S3-compatible store that is not AWS S3). Nothing when store.url is empty. */}}
{{- define "legion-model.storeEnv" -}}
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
