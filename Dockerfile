# wye's image: a static binary (CGO_ENABLED=0) on distroless, running as non-root (65532).
# Not built on the project's machines (no Docker engine there): docs/deploy.md.
#   docker build -t wye .
#   docker run --rm wye config check -c /etc/wye/wye.yaml
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/wye ./cmd/wye

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wye /usr/local/bin/wye
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/wye"]
