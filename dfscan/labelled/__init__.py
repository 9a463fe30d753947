"""Labelled data: `dfscan evaluate` (`evaluate`, `metrics`), the labels and datasets it and `dfscan train`
read (`labels`, `dataset`, `data_files`), a threshold and band proposed from labels (`calibrate`,
written as a sidecar by `sidecar`) and the output folders of both commands (`runs`)."""
