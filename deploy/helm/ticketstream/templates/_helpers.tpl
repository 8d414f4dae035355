{{- define "ticketstream.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ticketstream.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ticketstream.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ticketstream.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "ticketstream.fullname" .)) -}}
{{- end -}}

{{- define "ticketstream.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{/* Settings from the ConfigMap and the Secret, plus the TLS files when configured. */}}
{{- define "ticketstream.envFrom" -}}
- configMapRef:
    name: {{ include "ticketstream.fullname" . }}-settings
- secretRef:
    name: {{ include "ticketstream.secretName" . }}
{{- end -}}

{{- define "ticketstream.tlsVolume" -}}
{{- if .Values.kafka.tlsSecretName }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tlsSecretName }}
{{- end }}
{{- end -}}

{{- define "ticketstream.tlsMount" -}}
{{- if .Values.kafka.tlsSecretName }}
- name: kafka-tls
  mountPath: /etc/ticketstream/tls
  readOnly: true
{{- end }}
{{- end -}}
