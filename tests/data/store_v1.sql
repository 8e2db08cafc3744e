-- A results store made by orch before schema versions (sqlite3 .dump, rows trimmed).
BEGIN TRANSACTION;
CREATE TABLE device (
	id INTEGER NOT NULL, 
	serial VARCHAR NOT NULL, 
	alias VARCHAR, 
	model VARCHAR, 
	manufacturer VARCHAR, 
	sdk INTEGER, 
	release VARCHAR, 
	soc VARCHAR, 
	abi VARCHAR, 
	launcher VARCHAR, 
	facts JSON, 
	first_seen DATETIME NOT NULL, 
	last_seen DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "device" VALUES(1,'28121FDH2000X1','pixel7','Pixel 7','Google',34,'14','GS201','arm64-v8a','runas','{"free_mb": 53673, "python": "3.11.9", "interpreter": "tflite_runtime"}','2026-12-02 05:12:19.484539','2026-12-02 05:12:19.492741');
INSERT INTO "device" VALUES(2,'R5CR10ABCDE',NULL,'SM-G991B','samsung',33,'13','exynos2100','arm64-v8a','ssh','{"free_mb": 31562, "python": "3.11.9", "interpreter": "tflite_runtime"}','2026-12-02 05:12:19.488349','2026-12-02 05:12:19.488458');
INSERT INTO "device" VALUES(3,'emulator-virtual-1',NULL,'Pixel 4a','Google',30,'11','SM7150','arm64-v8a','direct','{"free_mb": 6653, "python": "3.11.9", "interpreter": "tflite_runtime"}','2026-12-02 05:12:19.490068','2026-12-02 05:12:19.490173');
INSERT INTO "device" VALUES(4,'SER1',NULL,'Pixel 7',NULL,NULL,NULL,NULL,NULL,NULL,'{}','2026-12-02 05:12:19.666349','2026-12-02 05:12:19.666427');
CREATE TABLE devicesample (
	id INTEGER NOT NULL, 
	run_id INTEGER, 
	device_id INTEGER NOT NULL, 
	step INTEGER, 
	battery FLOAT, 
	temperature FLOAT, 
	time DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES run (id), 
	FOREIGN KEY(device_id) REFERENCES device (id)
);
INSERT INTO "devicesample" VALUES(1,1,1,0,83.7,30.2,'2026-12-02 05:12:19.510239');
INSERT INTO "devicesample" VALUES(2,1,1,1,83.2,31.5,'2026-12-02 05:12:19.512006');
INSERT INTO "devicesample" VALUES(3,1,1,2,83.0,32.7,'2026-12-02 05:12:19.512631');
INSERT INTO "devicesample" VALUES(4,1,1,3,82.8,33.7,'2026-12-02 05:12:19.513148');
INSERT INTO "devicesample" VALUES(5,1,1,4,82.6,34.5,'2026-12-02 05:12:19.513622');
INSERT INTO "devicesample" VALUES(6,1,1,5,81.0,35.2,'2026-12-02 05:12:19.514061');
CREATE TABLE experiment (
	id INTEGER NOT NULL, 
	name VARCHAR NOT NULL, 
	spec JSON, 
	spec_hash VARCHAR NOT NULL, 
	created DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "experiment" VALUES(1,'paper-table1','{"name": "paper-table1", "description": "Transfer learning vs fine-tuning from layer B, on the phone.", "model": {"arch": "mobilenet_v1", "alpha": 0.25, "input_size": 128, "weights": "imagenet"}, "head": {"dropout": 0.2, "classes": ["cat", "dog"]}, "data": {"source": "device:/sdcard/DCIM/catsdogs", "train_per_class": 100, "test_per_class": 500, "seed": 0}, "training": {"batch_size": 4, "head_epochs": 10, "finetune_epochs": 10, "optimizer": "adam", "lr": 0.001, "finetune_lr": 0.0001}, "variants": {"method1": {"finetune_from": null}, "method2": {"finetune_from": "conv_pw_11"}}, "delegate": "nnapi"}','629f6fbed82c07cd','2026-12-02 05:12:19.478621');
INSERT INTO "experiment" VALUES(2,'sw-exp','{}','h','2026-12-02 05:12:19.665157');
CREATE TABLE metric (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	"key" VARCHAR NOT NULL, 
	step INTEGER NOT NULL, 
	value FLOAT, 
	is_nan BOOLEAN NOT NULL, 
	time DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_metric_run_key_step UNIQUE (run_id, "key", step), 
	FOREIGN KEY(run_id) REFERENCES run (id)
);
INSERT INTO "metric" VALUES(1,1,'train_loss',1,5.28854652440226780107e-01,0,'2026-12-02 05:12:19.503006');
INSERT INTO "metric" VALUES(2,1,'train_acc',1,6.47751520122959112413e-01,0,'2026-12-02 05:12:19.503236');
INSERT INTO "metric" VALUES(3,1,'test_loss',1,6.52373364923938936499e-01,0,'2026-12-02 05:12:19.503313');
INSERT INTO "metric" VALUES(4,1,'test_acc',1,6.32628166686698745202e-01,0,'2026-12-02 05:12:19.503383');
INSERT INTO "metric" VALUES(5,1,'phase',1,0.0,0,'2026-12-02 05:12:19.503443');
INSERT INTO "metric" VALUES(6,1,'train_loss',2,4.04385580287129287047e-01,0,'2026-12-02 05:12:19.503629');
CREATE TABLE run (
	id INTEGER NOT NULL, 
	experiment_id INTEGER NOT NULL, 
	device_id INTEGER, 
	sweep_id INTEGER, 
	variant VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	params JSON, 
	created DATETIME NOT NULL, 
	started DATETIME, 
	finished DATETIME, 
	accuracy FLOAT, 
	timing JSON, 
	delegate_requested VARCHAR, 
	delegate_used VARCHAR, 
	delegate_reason VARCHAR, 
	delegate_info JSON, 
	frozen_hash VARCHAR, 
	train_hash VARCHAR, 
	agent_version VARCHAR, 
	interpreter VARCHAR, 
	launcher VARCHAR, 
	device_run_dir VARCHAR, 
	result JSON, 
	events_seen INTEGER NOT NULL, 
	progress JSON, 
	error VARCHAR, 
	PRIMARY KEY (id), 
	FOREIGN KEY(experiment_id) REFERENCES experiment (id), 
	FOREIGN KEY(device_id) REFERENCES device (id)
);
INSERT INTO "run" VALUES(1,1,1,NULL,'method1','finished','{"finetune_from": null, "batch_size": 4, "head_epochs": 10, "finetune_epochs": 0}','2025-03-01 09:06:20.000000','2025-03-01 09:07:00.000000','2025-03-01 09:07:37.660000',8.82147113417305117621e-01,'{"decode": 10.52, "features": 19.6, "train": 3.22, "eval": 2.22, "train_per_epoch": [0.299, 0.381, 0.279, 0.335, 0.286, 0.395, 0.37, 0.317, 0.262, 0.298], "total": 37.66}','nnapi','nnapi',NULL,'{"nnapi_device": "google-edgetpu", "ops_total": 28, "ops_delegated": 28}','3405095c8a5006c1','cca74147f6be1f72','0.1.0','ai_edge_litert 2.3','runas','/data/local/tmp/orch/runs/r9a6a5f92','{"schema": 1, "status": "finished", "accuracy": 0.8821471134173051, "per_class_accuracy": {"cat": 0.8904, "dog": 0.884}, "epochs": [{"phase": "head", "epoch": 1, "train_loss": 0.5288546524402268, "train_acc": 0.6477515201229591, "test_loss": 0.6523733649239389, "test_acc": 0.6326281666866987, "seconds": 0.299}, {"phase": "head", "epoch": 2, "train_loss": 0.4043855802871293, "train_acc": 0.7401023859370105, "test_loss": 0.47522366979160524, "test_acc": 0.7205178349506347, "seconds": 0.381}, {"phase": "head", "epoch": 3, "train_loss": 0.2888475311374367, "train_acc": 0.7992108127576438, "test_loss": 0.3610137148777332, "test_acc": 0.7753157076537133, "seconds": 0.279}, {"phase": "head", "epoch": 4, "train_loss": 0.25386595259763595, "train_acc": 0.8598204814352483, "test_loss": 0.2728470515692247, "test_acc": 0.830250844534307, "seconds": 0.335}, {"phase": "head", "epoch": 5, "train_loss": 0.22679815711700882, "train_acc": 0.8658288029556394, "test_loss": 0.2557498635533328, "test_acc": 0.8425830092491361, "seconds": 0.286}, {"phase": "head", "epoch": 6, "train_loss": 0.1756574385129971, "train_acc": 0.8719010726391074, "test_loss": 0.20140104476759696, "test_acc": 0.8643835424373982, "seconds": 0.395}, {"phase": "head", "epoch": 7, "train_loss": 0.15415102579219017, "train_acc": 0.9161367498973408, "test_loss": 0.16699964704929063, "test_acc": 0.8869715907030719, "seconds": 0.37}, {"phase": "head", "epoch": 8, "train_loss": 0.13696108768174078, "train_acc": 0.9044855088758805, "test_loss": 0.18193354191024594, "test_acc": 0.879359813200555, "seconds": 0.317}, {"phase": "head", "epoch": 9, "train_loss": 0.14764098745072485, "train_acc": 0.9107466851843962, "test_loss": 0.16708450423308116, "test_acc": 0.8957760966287894, "seconds": 0.262}, {"phase": "head", "epoch": 10, "train_loss": 0.15197560118502415, "train_acc": 0.8994865600789382, "test_loss": 0.19025912929668887, "test_acc": 0.8821471134173051, "seconds": 0.298}], "timing": {"decode": 10.52, "features": 19.6, "train": 3.22, "eval": 2.22, "train_per_epoch": [0.299, 0.381, 0.279, 0.335, 0.286, 0.395, 0.37, 0.317, 0.262, 0.298], "total": 37.66}, "peak_memory_mb": 375.5, "delegate": {"requested": "nnapi", "used": "nnapi", "reason": null}, "versions": {"agent": "0.1.0", "interpreter": "ai_edge_litert 2.3", "python": "3.11"}, "counts": {"train": 200, "test": 1000, "skipped_corrupt": 0, "per_class_train": {"cat": 100, "dog": 100}, "per_class_test": {"cat": 500, "dog": 500}}}',14,'{}',NULL);
INSERT INTO "run" VALUES(2,1,2,NULL,'method1','finished','{"finetune_from": null, "batch_size": 4, "head_epochs": 10, "finetune_epochs": 0}','2025-03-01 09:13:20.000000','2025-03-01 09:14:00.000000','2025-03-01 09:15:15.010000',8.97111239355475542645e-01,'{"decode": 11.94, "features": 52.42, "train": 4.1, "eval": 4.15, "train_per_epoch": [0.467, 0.337, 0.457, 0.431, 0.446, 0.488, 0.339, 0.339, 0.384, 0.41], "total": 75.01}','nnapi','xnnpack','NNAPI rejected 3 of 28 ops (DEPTHWISE_CONV_2D); CPU fallback','{"nnapi_device": null, "ops_total": 28, "ops_delegated": 25}','d69c91c278601602','eb21a3f6e6fd68e8','0.1.0','ai_edge_litert 2.3','ssh','/data/local/tmp/orch/runs/r91dc59ef','{"schema": 1, "status": "finished", "accuracy": 0.8971112393554755, "per_class_accuracy": {"cat": 0.8928, "dog": 0.8875}, "epochs": [{"phase": "head", "epoch": 1, "train_loss": 0.5158151751731791, "train_acc": 0.6591157089062982, "test_loss": 0.6078919075267993, "test_acc": 0.6436301278622474, "seconds": 0.467}, {"phase": "head", "epoch": 2, "train_loss": 0.3773839763388151, "train_acc": 0.7527635922802441, "test_loss": 0.4593988389329444, "test_acc": 0.730257954180607, "seconds": 0.337}, {"phase": "head", "epoch": 3, "train_loss": 0.28166686127593143, "train_acc": 0.7915663414801384, "test_loss": 0.344734654389758, "test_acc": 0.783682597894782, "seconds": 0.457}, {"phase": "head", "epoch": 4, "train_loss": 0.23731191173772373, "train_acc": 0.8267824646558115, "test_loss": 0.266323421386929, "test_acc": 0.8213772389892943, "seconds": 0.431}, {"phase": "head", "epoch": 5, "train_loss": 0.16726130207754242, "train_acc": 0.8624219896848837, "test_loss": 0.21937678123800894, "test_acc": 0.8531599453421765, "seconds": 0.446}, {"phase": "head", "epoch": 6, "train_loss": 0.15115422136217382, "train_acc": 0.907790164052194, "test_loss": 0.16548088437944183, "test_acc": 0.8814070985644384, "seconds": 0.488}, {"phase": "head", "epoch": 7, "train_loss": 0.1277142870504771, "train_acc": 0.9185678590908185, "test_loss": 0.16699057371381043, "test_acc": 0.8901548661860739, "seconds": 0.339}, {"phase": "head", "epoch": 8, "train_loss": 0.14114535020262592, "train_acc": 0.8958930314597859, "test_loss": 0.18237268436255413, "test_acc": 0.8861800159022699, "seconds": 0.339}, {"phase": "head", "epoch": 9, "train_loss": 0.1274702404886242, "train_acc": 0.9167727196093237, "test_loss": 0.14633235959242086, "test_acc": 0.8909266088443366, "seconds": 0.384}, {"phase": "head", "epoch": 10, "train_loss": 0.13595303790653301, "train_acc": 0.9263785371868343, "test_loss": 0.16073010979240857, "test_acc": 0.8971112393554755, "seconds": 0.41}], "timing": {"decode": 11.94, "features": 52.42, "train": 4.1, "eval": 4.15, "train_per_epoch": [0.467, 0.337, 0.457, 0.431, 0.446, 0.488, 0.339, 0.339, 0.384, 0.41], "total": 75.01}, "peak_memory_mb": 397.1, "delegate": {"requested": "nnapi", "used": "xnnpack", "reason": "NNAPI rejected 3 of 28 ops (DEPTHWISE_CONV_2D); CPU fallback"}, "versions": {"agent": "0.1.0", "interpreter": "ai_edge_litert 2.3", "python": "3.11"}, "counts": {"train": 200, "test": 1000, "skipped_corrupt": 0, "per_class_train": {"cat": 100, "dog": 100}, "per_class_test": {"cat": 500, "dog": 500}}}',14,'{}',NULL);
INSERT INTO "run" VALUES(3,1,3,NULL,'method1','finished','{"finetune_from": null, "batch_size": 4, "head_epochs": 10, "finetune_epochs": 0}','2025-03-01 09:20:20.000000','2025-03-01 09:21:00.000000','2025-03-01 09:22:03.050000',9.01075729865358776571e-01,'{"decode": 16.21, "features": 34.09, "train": 6.05, "eval": 5.5, "train_per_epoch": [0.72, 0.621, 0.473, 0.646, 0.716, 0.558, 0.633, 0.535, 0.508, 0.644], "total": 63.05}','nnapi','nnapi',NULL,'{"nnapi_device": "google-edgetpu", "ops_total": 28, "ops_delegated": 28}','b044284a47acf2f6','2ea60b99fa7ff8bf','0.1.0','ai_edge_litert 2.3','direct','/data/local/tmp/orch/runs/r19a5711b','{"schema": 1, "status": "finished", "accuracy": 0.9010757298653588, "per_class_accuracy": {"cat": 0.8858, "dog": 0.907}, "epochs": [{"phase": "head", "epoch": 1, "train_loss": 0.5009941566291063, "train_acc": 0.6568834795546181, "test_loss": 0.6096004218093893, "test_acc": 0.6430778405167304, "seconds": 0.72}, {"phase": "head", "epoch": 2, "train_loss": 0.39518510256686745, "train_acc": 0.7523903170463355, "test_loss": 0.44247513230184976, "test_acc": 0.7315466207401042, "seconds": 0.621}, {"phase": "head", "epoch": 3, "train_loss": 0.2688410674675162, "train_acc": 0.792896262621235, "test_loss": 0.35830911859934655, "test_acc": 0.7775358129143038, "seconds": 0.473}, {"phase": "head", "epoch": 4, "train_loss": 0.24569466817693325, "train_acc": 0.8260175695140853, "test_loss": 0.2800003438411515, "test_acc": 0.8126575272475228, "seconds": 0.646}, {"phase": "head", "epoch": 5, "train_loss": 0.20028048912493723, "train_acc": 0.8707065088788539, "test_loss": 0.24046703184928359, "test_acc": 0.8438209240860285, "seconds": 0.716}, {"phase": "head", "epoch": 6, "train_loss": 0.1801722341570329, "train_acc": 0.8848252155695268, "test_loss": 0.2041752436777429, "test_acc": 0.8622794749711848, "seconds": 0.558}, {"phase": "head", "epoch": 7, "train_loss": 0.1502165229218776, "train_acc": 0.8818747440361782, "test_loss": 0.19220646301769953, "test_acc": 0.8657409392932074, "seconds": 0.633}, {"phase": "head", "epoch": 8, "train_loss": 0.15587712639919354, "train_acc": 0.9025008786583222, "test_loss": 0.17298596538595717, "test_acc": 0.8853192386315963, "seconds": 0.535}, {"phase": "head", "epoch": 9, "train_loss": 0.11903412151779968, "train_acc": 0.9166239288749644, "test_loss": 0.14113962946440897, "test_acc": 0.8992593621155822, "seconds": 0.508}, {"phase": "head", "epoch": 10, "train_loss": 0.12469993057871771, "train_acc": 0.9279511381523655, "test_loss": 0.1583289608958521, "test_acc": 0.9010757298653588, "seconds": 0.644}], "timing": {"decode": 16.21, "features": 34.09, "train": 6.05, "eval": 5.5, "train_per_epoch": [0.72, 0.621, 0.473, 0.646, 0.716, 0.558, 0.633, 0.535, 0.508, 0.644], "total": 63.05}, "peak_memory_mb": 389.7, "delegate": {"requested": "nnapi", "used": "nnapi", "reason": null}, "versions": {"agent": "0.1.0", "interpreter": "ai_edge_litert 2.3", "python": "3.11"}, "counts": {"train": 200, "test": 1000, "skipped_corrupt": 0, "per_class_train": {"cat": 100, "dog": 100}, "per_class_test": {"cat": 500, "dog": 500}}}',14,'{}',NULL);
INSERT INTO "run" VALUES(4,1,1,NULL,'method2','finished','{"finetune_from": "conv_pw_11", "batch_size": 4, "head_epochs": 10, "finetune_epochs": 10}','2025-03-01 09:27:20.000000','2025-03-01 09:28:00.000000','2025-03-01 09:29:08.430000',9.66210422076753672193e-01,'{"decode": 10.58, "features": 19.25, "train": 34.08, "eval": 3.21, "train_per_epoch": [0.266, 0.339, 0.323, 0.335, 0.346, 0.313, 0.328, 0.352, 0.383, 0.375, 3.598, 3.107, 3.431, 2.983, 3.507, 2.263, 3.203, 3.259, 2.68, 2.684], "total": 68.43}','nnapi','nnapi',NULL,'{"nnapi_device": "google-edgetpu", "ops_total": 28, "ops_delegated": 28}','10fce97d786e30ef','15ab2c21ccc93ff7','0.1.0','ai_edge_litert 2.3','runas','/data/local/tmp/orch/runs/r843b2a7d','{"schema": 1, "status": "finished", "accuracy": 0.9662104220767537, "per_class_accuracy": {"cat": 0.9614, "dog": 0.958}, "epochs": [{"phase": "head", "epoch": 1, "train_loss": 0.5091218419151929, "train_acc": 0.652074971330541, "test_loss": 0.6480199522951554, "test_acc": 0.6361889558906788, "seconds": 0.266}, {"phase": "head", "epoch": 2, "train_loss": 0.3486822343316381, "train_acc": 0.7384259742643227, "test_loss": 0.43353625362592335, "test_acc": 0.7261500870564687, "seconds": 0.339}, {"phase": "head", "epoch": 3, "train_loss": 0.2892548998366328, "train_acc": 0.801055897109491, "test_loss": 0.3193069938202077, "test_acc": 0.7868758602296946, "seconds": 0.323}, {"phase": "head", "epoch": 4, "train_loss": 0.22723531824506152, "train_acc": 0.8326902458868212, "test_loss": 0.2621874679064738, "test_acc": 0.8209496923654822, "seconds": 0.335}, {"phase": "head", "epoch": 5, "train_loss": 0.15623897259909356, "train_acc": 0.8861844239756738, "test_loss": 0.2021256922729496, "test_acc": 0.8564518483079341, "seconds": 0.346}, {"phase": "head", "epoch": 6, "train_loss": 0.15213357417299098, "train_acc": 0.9122318942139067, "test_loss": 0.16511001328659208, "test_acc": 0.8838880422288217, "seconds": 0.313}, {"phase": "head", "epoch": 7, "train_loss": 0.13501172700075265, "train_acc": 0.9088549256720597, "test_loss": 0.16671302554094147, "test_acc": 0.8962881591560953, "seconds": 0.328}, {"phase": "head", "epoch": 8, "train_loss": 0.13306526585556377, "train_acc": 0.9087706707765958, "test_loss": 0.16278767252752568, "test_acc": 0.8897499210533071, "seconds": 0.352}, {"phase": "head", "epoch": 9, "train_loss": 0.08823305354029091, "train_acc": 0.9371912886527357, "test_loss": 0.11411390262677182, "test_acc": 0.9118830721137753, "seconds": 0.383}, {"phase": "head", "epoch": 10, "train_loss": 0.11346469114370872, "train_acc": 0.9143736212948054, "test_loss": 0.12785876235389465, "test_acc": 0.9084280118031324, "seconds": 0.375}, {"phase": "finetune", "epoch": 11, "train_loss": 0.09294559077309383, "train_acc": 0.9406115896014167, "test_loss": 0.10200084881836291, "test_acc": 0.9314476851828547, "seconds": 3.598}, {"phase": "finetune", "epoch": 12, "train_loss": 0.04815814987233914, "train_acc": 0.9729998582171667, "test_loss": 0.060989942386859175, "test_acc": 0.9658268138586311, "seconds": 3.107}, {"phase": "finetune", "epoch": 13, "train_loss": 0.040384695607645515, "train_acc": 0.9706414835201789, "test_loss": 0.04688834753207189, "test_acc": 0.9560211860048143, "seconds": 3.431}, {"phase": "finetune", "epoch": 14, "train_loss": 0.05750387862173943, "train_acc": 0.9909429858289136, "test_loss": 0.06440260347327324, "test_acc": 0.962939168760758, "seconds": 2.983}, {"phase": "finetune", "epoch": 15, "train_loss": 0.037579760651533206, "train_acc": 0.9714841526213137, "test_loss": 0.03956508408692679, "test_acc": 0.9643925715508288, "seconds": 3.507}, {"phase": "finetune", "epoch": 16, "train_loss": 0.017694315865138678, "train_acc": 0.9843263617455345, "test_loss": 0.02289037399160326, "test_acc": 0.9751618339360596, "seconds": 2.263}, {"phase": "finetune", "epoch": 17, "train_loss": 0.01710326285516059, "train_acc": 1.0, "test_loss": 0.02, "test_acc": 0.9820192799391175, "seconds": 3.203}, {"phase": "finetune", "epoch": 18, "train_loss": 0.021353974708325122, "train_acc": 0.9911053675970118, "test_loss": 0.02664929868923978, "test_acc": 0.9810631696470304, "seconds": 3.259}, {"phase": "finetune", "epoch": 19, "train_loss": 0.03661986898400743, "train_acc": 1.0, "test_loss": 0.04186644565226916, "test_acc": 0.9788209810036034, "seconds": 2.68}, {"phase": "finetune", "epoch": 20, "train_loss": 0.03898565518468813, "train_acc": 0.9826706232168803, "test_loss": 0.04258878021700702, "test_acc": 0.9662104220767537, "seconds": 2.684}], "timing": {"decode": 10.58, "features": 19.25, "train": 34.08, "eval": 3.21, "train_per_epoch": [0.266, 0.339, 0.323, 0.335, 0.346, 0.313, 0.328, 0.352, 0.383, 0.375, 3.598, 3.107, 3.431, 2.983, 3.507, 2.263, 3.203, 3.259, 2.68, 2.684], "total": 68.43}, "peak_memory_mb": 349.5, "delegate": {"requested": "nnapi", "used": "nnapi", "reason": null}, "versions": {"agent": "0.1.0", "interpreter": "ai_edge_litert 2.3", "python": "3.11"}, "counts": {"train": 200, "test": 1000, "skipped_corrupt": 0, "per_class_train": {"cat": 100, "dog": 100}, "per_class_test": {"cat": 500, "dog": 500}}}',24,'{}',NULL);
INSERT INTO "run" VALUES(5,1,2,NULL,'method2','finished','{"finetune_from": "conv_pw_11", "batch_size": 4, "head_epochs": 10, "finetune_epochs": 10}','2025-03-01 09:34:20.000000','2025-03-01 09:35:00.000000','2025-03-01 09:36:47.830000',9.64180494095871254423e-01,'{"decode": 15.18, "features": 47.57, "train": 39.6, "eval": 3.13, "train_per_epoch": [0.406, 0.344, 0.476, 0.468, 0.331, 0.412, 0.459, 0.331, 0.504, 0.513, 4.193, 3.063, 3.048, 3.555, 2.977, 3.536, 2.942, 4.635, 4.362, 3.049], "total": 107.83}','nnapi','xnnpack','NNAPI rejected 3 of 28 ops (DEPTHWISE_CONV_2D); CPU fallback','{"nnapi_device": null, "ops_total": 28, "ops_delegated": 25}','b080e0035e7f503c','eecb325b064f768d','0.1.0','ai_edge_litert 2.3','ssh','/data/local/tmp/orch/runs/r9ad7558f','{"schema": 1, "status": "finished", "accuracy": 0.9641804940958713, "per_class_accuracy": {"cat": 0.9817, "dog": 0.9491}, "epochs": [{"phase": "head", "epoch": 1, "train_loss": 0.5503610958964461, "train_acc": 0.6500412214467713, "test_loss": 0.6789879015194569, "test_acc": 0.6235441358937348, "seconds": 0.406}, {"phase": "head", "epoch": 2, "train_loss": 0.3858409285961762, "train_acc": 0.7468161942296039, "test_loss": 0.4393557945119067, "test_acc": 0.7215652558841718, "seconds": 0.344}, {"phase": "head", "epoch": 3, "train_loss": 0.2816123526840944, "train_acc": 0.7872006657577247, "test_loss": 0.3700044031854446, "test_acc": 0.7750234572578442, "seconds": 0.476}, {"phase": "head", "epoch": 4, "train_loss": 0.2668306217397641, "train_acc": 0.8286275792233341, "test_loss": 0.28919554892506893, "test_acc": 0.8131809281034267, "seconds": 0.468}, {"phase": "head", "epoch": 5, "train_loss": 0.19210868936978057, "train_acc": 0.878417563425563, "test_loss": 0.20278722433192725, "test_acc": 0.8565789682105747, "seconds": 0.331}, {"phase": "head", "epoch": 6, "train_loss": 0.14784247103443493, "train_acc": 0.8876588390696988, "test_loss": 0.1946815767895771, "test_acc": 0.8673645674615773, "seconds": 0.412}, {"phase": "head", "epoch": 7, "train_loss": 0.13866642874942364, "train_acc": 0.8897361524775881, "test_loss": 0.15875167753973712, "test_acc": 0.8809519586302171, "seconds": 0.459}, {"phase": "head", "epoch": 8, "train_loss": 0.13152996763823327, "train_acc": 0.9005488068287574, "test_loss": 0.16053286279025275, "test_acc": 0.8929164862123482, "seconds": 0.331}, {"phase": "head", "epoch": 9, "train_loss": 0.14717791919217563, "train_acc": 0.9168706117571601, "test_loss": 0.15889562577884908, "test_acc": 0.8924601142896682, "seconds": 0.504}, {"phase": "head", "epoch": 10, "train_loss": 0.12293862261600719, "train_acc": 0.9182412989509302, "test_loss": 0.15037019470190735, "test_acc": 0.9015615885749785, "seconds": 0.513}, {"phase": "finetune", "epoch": 11, "train_loss": 0.10907595889716007, "train_acc": 0.9430166568673176, "test_loss": 0.1201656504366226, "test_acc": 0.9209534164000045, "seconds": 4.193}, {"phase": "finetune", "epoch": 12, "train_loss": 0.09852535873785191, "train_acc": 0.9631339204437666, "test_loss": 0.10555789129071116, "test_acc": 0.9353393374905286, "seconds": 3.063}, {"phase": "finetune", "epoch": 13, "train_loss": 0.05700970232414543, "train_acc": 0.9839396698346683, "test_loss": 0.066771614797738, "test_acc": 0.9619145086757419, "seconds": 3.048}, {"phase": "finetune", "epoch": 14, "train_loss": 0.051196975883897315, "train_acc": 0.9748212942489733, "test_loss": 0.061027541156195506, "test_acc": 0.9650931075525437, "seconds": 3.555}, {"phase": "finetune", "epoch": 15, "train_loss": 0.04414474902894966, "train_acc": 0.983981930276092, "test_loss": 0.05770043161596522, "test_acc": 0.9675951743557873, "seconds": 2.977}, {"phase": "finetune", "epoch": 16, "train_loss": 0.06293619821112928, "train_acc": 0.9808028821494877, "test_loss": 0.06765774248905332, "test_acc": 0.9524456425901986, "seconds": 3.536}, {"phase": "finetune", "epoch": 17, "train_loss": 0.03013713506435831, "train_acc": 0.996887218813306, "test_loss": 0.037994568485566635, "test_acc": 0.9752244400019151, "seconds": 2.942}, {"phase": "finetune", "epoch": 18, "train_loss": 0.07180980802706849, "train_acc": 0.9809908312689934, "test_loss": 0.07927084826957154, "test_acc": 0.9555059758919366, "seconds": 4.635}, {"phase": "finetune", "epoch": 19, "train_loss": 0.02642057853692238, "train_acc": 0.9859617814572195, "test_loss": 0.03419303141446947, "test_acc": 0.970459003555349, "seconds": 4.362}, {"phase": "finetune", "epoch": 20, "train_loss": 0.06371004992792126, "train_acc": 0.9833308184520652, "test_loss": 0.06798269762740697, "test_acc": 0.9641804940958713, "seconds": 3.049}], "timing": {"decode": 15.18, "features": 47.57, "train": 39.6, "eval": 3.13, "train_per_epoch": [0.406, 0.344, 0.476, 0.468, 0.331, 0.412, 0.459, 0.331, 0.504, 0.513, 4.193, 3.063, 3.048, 3.555, 2.977, 3.536, 2.942, 4.635, 4.362, 3.049], "total": 107.83}, "peak_memory_mb": 181.7, "delegate": {"requested": "nnapi", "used": "xnnpack", "reason": "NNAPI rejected 3 of 28 ops (DEPTHWISE_CONV_2D); CPU fallback"}, "versions": {"agent": "0.1.0", "interpreter": "ai_edge_litert 2.3", "python": "3.11"}, "counts": {"train": 200, "test": 1000, "skipped_corrupt": 0, "per_class_train": {"cat": 100, "dog": 100}, "per_class_test": {"cat": 500, "dog": 500}}}',24,'{}',NULL);
INSERT INTO "run" VALUES(6,1,3,NULL,'method2','finished','{"finetune_from": "conv_pw_11", "batch_size": 4, "head_epochs": 10, "finetune_epochs": 10}','2025-03-01 09:41:20.000000','2025-03-01 09:42:00.000000','2025-03-01 09:43:53.530000',9.85308353070384779215e-01,'{"decode": 20.99, "features": 27.53, "train": 58.35, "eval": 4.88, "train_per_epoch": [0.525, 0.569, 0.603, 0.487, 0.483, 0.483, 0.558, 0.576, 0.601, 0.531, 5.586, 5.854, 4.58, 5.238, 5.269, 5.247, 6.379, 5.129, 4.397, 5.254], "total": 113.53}','nnapi','nnapi',NULL,'{"nnapi_device": "google-edgetpu", "ops_total": 28, "ops_delegated": 28}','ddfae808afd86432','afb120f414d4dad6','0.1.0','ai_edge_litert 2.3','direct','/data/local/tmp/orch/runs/rf305ee95','{"schema": 1, "status": "finished", "accuracy": 0.9853083530703848, "per_class_accuracy": {"cat": 1.005, "dog": 0.9992}, "epochs": [{"phase": "head", "epoch": 1, "train_loss": 0.5544779010974241, "train_acc": 0.645760411084053, "test_loss": 0.632564294725952, "test_acc": 0.6318963081831762, "seconds": 0.525}, {"phase": "head", "epoch": 2, "train_loss": 0.3250333062451952, "train_acc": 0.7499248830249403, "test_loss": 0.43240596884333915, "test_acc": 0.7316947005974265, "seconds": 0.569}, {"phase": "head", "epoch": 3, "train_loss": 0.2542338923809599, "train_acc": 0.8284670232144582, "test_loss": 0.3084167599051418, "test_acc": 0.8009354649540116, "seconds": 0.603}, {"phase": "head", "epoch": 4, "train_loss": 0.17623438930369556, "train_acc": 0.8491674931191011, "test_loss": 0.22836481112813772, "test_acc": 0.8418910809170058, "seconds": 0.487}, {"phase": "head", "epoch": 5, "train_loss": 0.19126380323233752, "train_acc": 0.8694734183156474, "test_loss": 0.21477775371971736, "test_acc": 0.8493347717859951, "seconds": 0.483}, {"phase": "head", "epoch": 6, "train_loss": 0.12878458956928138, "train_acc": 0.8970621546441794, "test_loss": 0.1640677871425831, "test_acc": 0.887427637442465, "seconds": 0.483}, {"phase": "head", "epoch": 7, "train_loss": 0.12113457402933568, "train_acc": 0.9140927755408182, "test_loss": 0.14753195124016066, "test_acc": 0.900583077973686, "seconds": 0.558}, {"phase": "head", "epoch": 8, "train_loss": 0.12628522093267733, "train_acc": 0.908188582910649, "test_loss": 0.1561108816488639, "test_acc": 0.9010260979959721, "seconds": 0.576}, {"phase": "head", "epoch": 9, "train_loss": 0.10192709895360885, "train_acc": 0.9275950435246555, "test_loss": 0.1284126048905532, "test_acc": 0.9113678341021537, "seconds": 0.601}, {"phase": "head", "epoch": 10, "train_loss": 0.12447974735007411, "train_acc": 0.9273970450825625, "test_loss": 0.14277949450251606, "test_acc": 0.8979269822252698, "seconds": 0.531}, {"phase": "finetune", "epoch": 11, "train_loss": 0.06409866077574657, "train_acc": 0.9603499035891399, "test_loss": 0.07545138388427601, "test_acc": 0.9365660910901987, "seconds": 5.586}, {"phase": "finetune", "epoch": 12, "train_loss": 0.04196388306341577, "train_acc": 0.9823597011034553, "test_loss": 0.047881395304517, "test_acc": 0.9637661805511637, "seconds": 5.854}, {"phase": "finetune", "epoch": 13, "train_loss": 0.05901832787707411, "train_acc": 0.9616599286119916, "test_loss": 0.0786857907639181, "test_acc": 0.9499079684902039, "seconds": 4.58}, {"phase": "finetune", "epoch": 14, "train_loss": 0.04984008153700592, "train_acc": 0.9914831277777721, "test_loss": 0.05941003328459888, "test_acc": 0.9642190825650533, "seconds": 5.238}, {"phase": "finetune", "epoch": 15, "train_loss": 0.04351170191442454, "train_acc": 0.9896145866409782, "test_loss": 0.04919303068909735, "test_acc": 0.9757690358350153, "seconds": 5.269}, {"phase": "finetune", "epoch": 16, "train_loss": 0.026827435926684212, "train_acc": 0.971625911129444, "test_loss": 0.03342993677562121, "test_acc": 0.9644944302129568, "seconds": 5.247}, {"phase": "finetune", "epoch": 17, "train_loss": 0.047879838012325336, "train_acc": 0.9817270181871757, "test_loss": 0.051586882571624665, "test_acc": 0.9737723975929824, "seconds": 6.379}, {"phase": "finetune", "epoch": 18, "train_loss": 0.03449614386179417, "train_acc": 0.9866683121363813, "test_loss": 0.04277002281648316, "test_acc": 0.9799659879443732, "seconds": 5.129}, {"phase": "finetune", "epoch": 19, "train_loss": 0.029146988140814702, "train_acc": 0.9834129653905734, "test_loss": 0.03780113061834159, "test_acc": 0.9653364657967307, "seconds": 4.397}, {"phase": "finetune", "epoch": 20, "train_loss": 0.028276097602556664, "train_acc": 1.0, "test_loss": 0.030377975687732508, "test_acc": 0.9853083530703848, "seconds": 5.254}], "timing": {"decode": 20.99, "features": 27.53, "train": 58.35, "eval": 4.88, "train_per_epoch": [0.525, 0.569, 0.603, 0.487, 0.483, 0.483, 0.558, 0.576, 0.601, 0.531, 5.586, 5.854, 4.58, 5.238, 5.269, 5.247, 6.379, 5.129, 4.397, 5.254], "total": 113.53}, "peak_memory_mb": 414.9, "delegate": {"requested": "nnapi", "used": "nnapi", "reason": null}, "versions": {"agent": "0.1.0", "interpreter": "ai_edge_litert 2.3", "python": "3.11"}, "counts": {"train": 200, "test": 1000, "skipped_corrupt": 0, "per_class_train": {"cat": 100, "dog": 100}, "per_class_test": {"cat": 500, "dog": 500}}}',24,'{}',NULL);
INSERT INTO "run" VALUES(7,1,1,NULL,'method2','running','{"finetune_from": "conv_pw_11"}','2025-03-01 09:42:00.000000','2025-03-01 09:42:00.000000',NULL,NULL,'{}','nnapi','nnapi',NULL,'{}',NULL,NULL,NULL,NULL,'runas',NULL,'{}',0,'{"stage": "train", "done": 3, "total": 20, "epoch": 3, "epochs": 20}',NULL);
INSERT INTO "run" VALUES(8,1,2,NULL,'method1','failed','{"finetune_from": null}','2025-03-01 09:42:00.000000','2025-03-01 09:42:00.000000',NULL,NULL,'{}','nnapi',NULL,NULL,'{}',NULL,NULL,NULL,NULL,'ssh',NULL,'{}',0,'{}','agent exited with code 5: the phone''s storage is full (needs 120 MB)');
INSERT INTO "run" VALUES(9,2,4,1,'v0','queued','{}','2026-12-02 05:12:19.670585',NULL,NULL,NULL,'{}',NULL,NULL,NULL,'{}',NULL,NULL,NULL,NULL,NULL,NULL,'{}',0,'{}',NULL);
INSERT INTO "run" VALUES(10,2,4,1,'v1','queued','{}','2026-12-02 05:12:19.672474',NULL,NULL,NULL,'{}',NULL,NULL,NULL,'{}',NULL,NULL,NULL,NULL,NULL,NULL,'{}',0,'{}',NULL);
CREATE TABLE sweep (
	id INTEGER NOT NULL, 
	name VARCHAR NOT NULL, 
	experiment_id INTEGER NOT NULL, 
	spec JSON, 
	status VARCHAR NOT NULL, 
	created DATETIME NOT NULL, 
	started DATETIME, 
	finished DATETIME, 
	owner VARCHAR, 
	heartbeat DATETIME, 
	error VARCHAR, 
	PRIMARY KEY (id), 
	FOREIGN KEY(experiment_id) REFERENCES experiment (id)
);
INSERT INTO "sweep" VALUES(1,'sw',2,'{"devices": ["SER1"]}','queued','2026-12-02 05:12:19.667278',NULL,NULL,NULL,NULL,NULL);
CREATE TABLE sweepitem (
	id INTEGER NOT NULL, 
	sweep_id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	run_ids JSON, 
	label VARCHAR NOT NULL, 
	variant VARCHAR NOT NULL, 
	point JSON, 
	repetition INTEGER NOT NULL, 
	spec JSON, 
	device_id INTEGER, 
	phone VARCHAR NOT NULL, 
	model VARCHAR, 
	attempts INTEGER NOT NULL, 
	health_wait FLOAT NOT NULL, 
	note VARCHAR, 
	PRIMARY KEY (id), 
	FOREIGN KEY(sweep_id) REFERENCES sweep (id), 
	FOREIGN KEY(run_id) REFERENCES run (id), 
	FOREIGN KEY(device_id) REFERENCES device (id)
);
INSERT INTO "sweepitem" VALUES(1,1,9,'[9]','v0','v','{"i": 0}',0,'{}',4,'SER1','Pixel 7',0,0.0,NULL);
INSERT INTO "sweepitem" VALUES(2,1,10,'[10]','v1','v','{"i": 1}',0,'{}',4,'SER1','Pixel 7',0,0.0,NULL);
CREATE TABLE transfer (
	id INTEGER NOT NULL, 
	run_id INTEGER, 
	device_id INTEGER, 
	direction VARCHAR NOT NULL, 
	kind VARCHAR NOT NULL, 
	device_path VARCHAR NOT NULL, 
	bytes INTEGER NOT NULL, 
	sha256 VARCHAR, 
	launcher VARCHAR, 
	reason VARCHAR, 
	time DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES run (id), 
	FOREIGN KEY(device_id) REFERENCES device (id)
);
INSERT INTO "transfer" VALUES(1,1,1,'push','agent','/data/local/tmp/orch/agent/device_agent.tar',48213,'ec62b2c82648ee38e07405eb215663ab','runas',NULL,'2026-12-02 05:12:19.516747');
INSERT INTO "transfer" VALUES(2,1,1,'push','model','/data/local/tmp/orch/models/a1/frozen.tflite',1876544,'e5eeac76148b2758d7ab792809e469e6','runas',NULL,'2026-12-02 05:12:19.520565');
INSERT INTO "transfer" VALUES(3,1,1,'push','model','/data/local/tmp/orch/models/a1/train.tflite',1204112,'8a64c1b9d450fe4aec4f217bb306d1a8','runas',NULL,'2026-12-02 05:12:19.521836');
INSERT INTO "transfer" VALUES(4,1,1,'push','job','/data/local/tmp/orch/runs/r1/job.json',912,'b48d73f1d67e55fd642bfa42aef9c00b','runas',NULL,'2026-12-02 05:12:19.522706');
INSERT INTO "transfer" VALUES(5,1,1,'skipped','model','/data/local/tmp/orch/models/a1/meta.json',640,NULL,NULL,'already on the phone with the same sha256','2026-12-02 05:12:19.523531');
INSERT INTO "transfer" VALUES(6,1,1,'pull','metrics','/data/local/tmp/orch/runs/r1/events.jsonl',9884,'cfc6e62585940927468ff53d864a7a50','runas',NULL,'2026-12-02 05:12:19.524388');
CREATE INDEX ix_device_alias ON device (alias);
CREATE UNIQUE INDEX ix_device_serial ON device (serial);
CREATE UNIQUE INDEX ix_experiment_name ON experiment (name);
CREATE INDEX ix_run_experiment_id ON run (experiment_id);
CREATE INDEX ix_run_status ON run (status);
CREATE INDEX ix_run_sweep_id ON run (sweep_id);
CREATE INDEX ix_run_device_id ON run (device_id);
CREATE INDEX ix_sweep_experiment_id ON sweep (experiment_id);
CREATE INDEX ix_sweep_name ON sweep (name);
CREATE INDEX ix_sweep_status ON sweep (status);
CREATE INDEX ix_metric_run_key ON metric (run_id, "key");
CREATE INDEX ix_devicesample_run ON devicesample (run_id);
CREATE INDEX ix_devicesample_device_id ON devicesample (device_id);
CREATE INDEX ix_transfer_run ON transfer (run_id);
CREATE INDEX ix_sweepitem_run_id ON sweepitem (run_id);
CREATE INDEX ix_sweepitem_sweep_device ON sweepitem (sweep_id, device_id);
COMMIT;
