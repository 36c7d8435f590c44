/*
 * bench_hdd.c - a spinning-disk cost model fed by the engine's write trace.
 *
 * Benchmarks run on whatever disk the machine has (often an SSD or a virtual
 * disk), which hides the one thing that matters on the appliance's hard
 * disks: every write that does not continue where the previous one ended
 * costs a head movement. The engine reports each write it submits
 * (volume, segment, offset, length); this model charges 8 ms for each
 * non-contiguous write and 1 s per 200 MB transferred, per volume, and so
 * estimates how busy a real HDD would be with the same write pattern.
 *
 * Contiguous means: same segment, starting at the previous write's
 * offset + length. Moving to another segment file counts as a seek, since
 * nothing promises that segment files lie next to each other on the disk.
 * The trace is called from engine writer threads, so a mutex guards it.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int hdd_init(struct hdd_model *m, int volumes)
{
	int err;

	*m = (struct hdd_model){ .volumes = volumes };
	m->heads = calloc(volumes > 0 ? (size_t)volumes : 1, sizeof(*m->heads));
	if (!m->heads) {
		fprintf(stderr, "hdd model: out of memory\n");
		return -ENOMEM;
	}
	err = pthread_mutex_init(&m->lock, NULL);
	if (err) {
		free(m->heads);
		fprintf(stderr, "hdd model: pthread_mutex_init failed (%d)\n", err);
		return -err;
	}
	return 0;
}

void hdd_free(struct hdd_model *m)
{
	pthread_mutex_destroy(&m->lock);
	free(m->heads);
	m->heads = NULL;
}

void hdd_trace(void *user, int volume_index, uint64_t segment,
               uint64_t offset, uint64_t length)
{
	struct hdd_model *m = user;
	struct hdd_head *h;

	pthread_mutex_lock(&m->lock);
	if (volume_index < 0 || volume_index >= m->volumes) {
		m->bad_volume++;
		pthread_mutex_unlock(&m->lock);
		return;
	}
	h = &m->heads[volume_index];
	if (!h->valid || h->segment != segment || h->end != offset)
		m->seeks++;
	h->valid = true;
	h->segment = segment;
	h->end = offset + length;
	m->writes++;
	m->bytes += length;
	pthread_mutex_unlock(&m->lock);
}

double hdd_busy_seconds(struct hdd_model *m)
{
	double s;

	pthread_mutex_lock(&m->lock);
	s = (double)m->seeks * HDD_SEEK_SECONDS +
	    (double)m->bytes / HDD_BYTES_PER_SECOND;
	pthread_mutex_unlock(&m->lock);
	return s;
}
