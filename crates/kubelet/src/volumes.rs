//! Pod volumes: emptyDir, configMap, secret, hostPath, downwardAPI and projected.
